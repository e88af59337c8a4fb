#!/usr/bin/env bash
# Sets up kerasllm in .venv, trains the character-level Shakespeare model for
# a few minutes on the CPU, exports it as a TF Serving SavedModel and
# generates from that.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -e .
# Use a local copy of the datasets when one sits beside the checkout;
# otherwise kerasllm downloads Tiny Shakespeare into ~/.cache/kerasllm.
if [ -z "${KERASLLM_DATA_DIR:-}" ] && [ -f ../shared/data/tinyshakespeare.txt ]; then
  export KERASLLM_DATA_DIR="$(cd ../shared/data && pwd)"
fi
.venv/bin/kerasllm train --config configs/shakespeare-char.yaml --set train.max_steps=${QUICKSTART_STEPS:-300}
.venv/bin/kerasllm export --run runs/shakespeare-char --name shakespeare
.venv/bin/kerasllm generate --model saved_models/shakespeare "ROMEO:" --max-new-tokens 100 --num-samples 2
