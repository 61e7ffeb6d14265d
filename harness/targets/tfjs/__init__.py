"""The tfjs target: target.py (browser lifecycle and deploy interface), backends.py (the tf.js backends as
data: bundles, page set-up, Chromium flags, tolerance path), convert.py (tensorflowjs_converter),
page.py (a tf.js page and the page-side scripts) and kit.py (helpers scenarios use)."""
