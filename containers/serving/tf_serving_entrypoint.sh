#!/bin/bash
# Same contract as tensorflow/serving's /usr/bin/tf_serving_entrypoint.sh: serve
# ${MODEL_BASE_PATH}/${MODEL_NAME} on gRPC 8500 and REST 8501; extra arguments pass through
# (e.g. --model_config_file=..., --enable_batching, --file_system_poll_wait_seconds=N).
exec tensorflow_model_server --port=8500 --rest_api_port=8501 \
    --model_name="${MODEL_NAME}" --model_base_path="${MODEL_BASE_PATH}/${MODEL_NAME}" "$@"
