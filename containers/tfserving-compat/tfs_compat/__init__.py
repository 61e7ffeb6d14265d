"""A TF Serving-compatible server: TF Serving's flags, REST and gRPC APIs, run on TensorFlow.

It is not TF Serving.  It imitates ``tensorflow_model_server`` (flag names, model discovery,
version policies, the REST/gRPC surface and TF Serving's own error texts) and executes
SavedModels with TensorFlow's runtime in a Session, so execution errors are TensorFlow's own.
Start it with ``python -m tfs_compat --model_name=m --model_base_path=/models/m``.
"""

__version__ = "0.1.0"
