#!/bin/sh
# start the model server
docker run --rm -p 8500:8500 -p 8501:8501 \
  -v "$(pwd)/models:/models" -v "$(pwd)/models.config:/config/models.config" \
  -v "$(pwd)/batching.config:/config/batching.config" \
  tensorflow/serving --model_config_file=/config/models.config \
  --allow_version_labels_for_unavailable_models=true \
  --enable_batching=true --batching_parameters_file=/config/batching.config
