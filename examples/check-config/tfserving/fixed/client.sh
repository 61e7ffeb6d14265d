#!/bin/sh
curl -s -d '{"signature_name": "serving_default", "instances": [[0, 0, 0, 0, 0, 0, 0, 0]]}' \
  http://localhost:8501/v1/models/classifier/labels/stable:predict
curl -s http://localhost:8501/v1/models/classifier
