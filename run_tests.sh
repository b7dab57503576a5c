#!/usr/bin/env bash
# ./run_tests.sh [pytest args]: bootstrap .venv if needed, then run the test suite
# (unit tests and a papermill run of every notebook in the smoke profile).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec python -m pytest -q -n "${WILDHANDS_TEST_WORKERS:-2}" --durations=15 "$@"
