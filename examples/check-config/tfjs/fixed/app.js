// The classifier: load the model, then score a row every 100 ms (five times).
async function classify() {
  await tf.setBackend('cpu');
  const model = await tf.loadGraphModel('model/model.json');
  let runs = 0;
  const timer = setInterval(() => {
    const scores = tf.tidy(() => model.predict(tf.zeros([1, 8])));
    scores.data().then((values) => {
      document.getElementById('score').textContent = values.join(' ');
      scores.dispose();
    });
    if (++runs === 5) clearInterval(timer);
  }, 100);
}

classify();
