// The classifier: load the model, then score a row every 100 ms (five times).
async function classify() {
  const model = await tf.loadGraphModel('model/model.json');
  let runs = 0;
  const timer = setInterval(() => {
    const scores = model.predict(tf.zeros([1, 8]));  // neither the input nor the scores are disposed
    scores.data().then((values) => { document.getElementById('score').textContent = values.join(' '); });
    if (++runs === 5) clearInterval(timer);
  }, 100);
}

// The previous model, kept as a fall-back.
function fallback() {
  const backup = tf.loadLayersModel('backup/model.json');
  return backup.predict(tf.zeros([1, 8]));
}

// The same model from the developer's disk, for working offline.
async function offline() {
  return tf.loadGraphModel('file:///home/me/app/model/model.json');
}

classify();
offline();
fallback();
