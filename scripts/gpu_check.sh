#!/usr/bin/env bash
# scripts/gpu_check.sh [--skip-quick]: first figures from a CUDA machine, in under 8 minutes.
# Versions, training images/s of each variant at the paper's sizes with peak memory, 1 process
# against 2-process DDP, and the quick profile's 2D recipe with its validation error
# (scripts/gpu_check.py says what each figure is; docs/gpu.md what to expect). Writes
# outputs/metrics/gpu_check.json; what it trains goes to a temporary folder, removed at the end.
# Without a CUDA device it says so and exits with status 2.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
status=0
WILDHANDS_OUTPUTS="$scratch" timeout 480 python scripts/gpu_check.py --report outputs/metrics/gpu_check.json "$@" \
  || status=$?
if [ "$status" = 124 ]; then
  echo "[gpu_check] stopped after 8 minutes; the figures printed above are those measured so far" >&2
fi
exit "$status"
