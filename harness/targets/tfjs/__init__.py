"""The tfjs target: target.py (browser lifecycle and deploy interface), convert.py (tensorflowjs_converter),
page.py (a tf.js page and the page-side scripts) and kit.py (helpers scenarios use)."""
