#!/usr/bin/env bash
# ./run_all.sh [--profile smoke|quick|paper] [-p name value ...] [--only NN]
# Bootstraps .venv if needed, then executes the notebooks in order with papermill
# into outputs/notebooks/, stopping at the first failing notebook and cell.
# ./run_all.sh --profile paper-dryrun [--input-size N]: the paper profile's code path on the
# CPU with counts and sizes shrunk, on real-format fixtures (python -m wildhands dryrun
# --notebooks; docs/gpu.md), ending with a kill-and-resume check and 2-process torchrun DDP.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[i]}" = "--profile" ] && [ "${args[i+1]:-}" = "paper-dryrun" ]; then
    rest=("${args[@]:0:i}" "${args[@]:i+2}")
    for arg in "${rest[@]}"; do
      case "$arg" in
        -p|--parameters|--only)
          echo "run_all.sh: --profile paper-dryrun takes no notebook parameters or --only (its profile is" \
               "fixed; python -m wildhands dryrun --help lists its options)" >&2
          exit 2 ;;
      esac
    done
    exec python -m wildhands dryrun --notebooks "${rest[@]}"
  fi
done
exec python -m wildhands.app.notebook_runner "$@"
