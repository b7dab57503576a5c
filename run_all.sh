#!/usr/bin/env bash
# ./run_all.sh [--profile smoke|quick|paper] [-p name value ...] [--only NN]
# Bootstraps .venv if needed, then executes the notebooks in order with papermill
# into outputs/notebooks/, stopping at the first failing notebook and cell.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
exec python -m wildhands.notebook_runner "$@"
