#!/usr/bin/env bash
# ./run_tests.sh [--all] [pytest args]: bootstrap .venv if needed, then run the tests.
#   default: the unit tests and the first smoke notebook (00_hand_model); a few minutes on 2 cores.
#   --all:   also every other notebook in the smoke profile and the slow tests (the paper dry run,
#            DDP on two processes): what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
selection=(-m "not slow")
if [ "${1:-}" = "--all" ]; then
  shift
  selection=()
fi
exec python -m pytest -q -n "${WILDHANDS_TEST_WORKERS:-2}" --durations=15 ${selection[@]+"${selection[@]}"} "$@"
