// The classifier: load the model, then score a row five times, every 100 ms.
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function classify() {
  const model = await tf.loadGraphModel('model/model.json');
  for (let run = 0; run < 5; run++) {
    const scores = model.predict(tf.zeros([1, 8]));  // neither the input nor the scores are disposed
    document.getElementById('score').textContent = (await scores.data()).join(' ');
    await pause(100);
  }
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
