#!/bin/sh
# start the model server
docker run --rm -p 8500:8500 \
  -v "$(pwd)/models:/models" -v "$(pwd)/models.config:/config/models.config" \
  tensorflow/serving --model_config_file=/config/models.config \
  --enable_batching --batching_parameters_file /config/batching.config
