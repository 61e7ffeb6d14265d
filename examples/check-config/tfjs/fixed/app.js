// The classifier: load the model, then score a row five times, every 100 ms.
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function classify() {
  await tf.setBackend('cpu');
  const model = await tf.loadGraphModel('model/model.json');
  for (let run = 0; run < 5; run++) {
    const scores = tf.tidy(() => model.predict(tf.zeros([1, 8])));
    document.getElementById('score').textContent = (await scores.data()).join(' ');
    scores.dispose();
    await pause(100);
  }
}

classify();
