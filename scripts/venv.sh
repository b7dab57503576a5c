# Sourced by run_all.sh and run_tests.sh: create .venv when missing and
# (re)install only when requirements.txt or pyproject.toml changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON_BIN="${PYTHON:-python3}"
STAMP="$VENV/.wildhands-install-stamp"
want="$(cat "$ROOT/requirements.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[wildhands] creating $VENV"
  "$PYTHON_BIN" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  echo "[wildhands] installing requirements into $VENV (requirements.txt or pyproject.toml changed)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r "$ROOT/requirements.txt"
  "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$ROOT"
  "$VENV/bin/python" -m ipykernel install --prefix "$VENV" --name python3 >/dev/null
  echo "$want" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
export MPLBACKEND=Agg
