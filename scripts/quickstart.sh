#!/usr/bin/env bash
# Sets up kerasllm in .venv, trains the character-level Shakespeare model on
# the CPU for 320 steps or 3 minutes of training, whichever ends first (a
# slow host stops at the time limit; docs/benchmarks.md has a measured run),
# exports it as a TF
# Serving SavedModel and generates from that. Running it again finds the run
# complete (its steps or its minutes used up), exports the same weights as
# the next version and generates again.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -e .
# Use a local copy of the datasets when one sits beside the checkout;
# otherwise kerasllm downloads Tiny Shakespeare into ~/.cache/kerasllm.
if [ -z "${KERASLLM_DATA_DIR:-}" ] && [ -f ../shared/data/tinyshakespeare.txt ]; then
  export KERASLLM_DATA_DIR="$(cd ../shared/data && pwd)"
fi
.venv/bin/kerasllm train --config configs/shakespeare-char.yaml --set train.max_steps=${QUICKSTART_STEPS:-320} \
  --set train.time_limit_minutes=${QUICKSTART_MINUTES:-3}
.venv/bin/kerasllm export --run runs/shakespeare-char --name shakespeare
.venv/bin/kerasllm generate --model saved_models/shakespeare "ROMEO:" --max-new-tokens 100 --num-samples 2
