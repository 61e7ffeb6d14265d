#!/bin/sh
curl -s -d '{"signature_name": "predict", "instances": [[0, 0, 0, 0, 0, 0, 0, 0]]}' \
  http://localhost:8500/v1/models/classifier:predict
curl -s http://localhost:8500/v1/models/clasifier
