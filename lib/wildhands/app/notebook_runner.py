"""Execute the notebooks in order with papermill, stopping at the first failure.

Used by ``./run_all.sh`` and by the notebook tests. Each notebook is executed with
the venv's ``python3`` kernel, its working directory set to ``notebooks/``, and
written to ``outputs/notebooks/``. A failure names the notebook and the failing
cell.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from wildhands.paths import OUTPUTS_DIR, PROJECT_ROOT

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"


class NotebookFailed(RuntimeError):
    pass


def list_notebooks(only=None) -> list[Path]:
    """Notebooks in run order (by their numeric prefix); ``only`` keeps names starting with any prefix given."""
    books = sorted(p for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        books = [b for b in books if any(b.name.startswith(o) for o in only)]
        if not books:
            raise FileNotFoundError(f"no notebook in {NOTEBOOKS_DIR} starts with {only}")
    return books


def _failing_cell(output_path: Path) -> str:
    import nbformat

    nb = nbformat.read(output_path, as_version=4)
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                source = cell.source.strip().splitlines()
                first = source[0] if source else ""
                return f"cell {index} ({first[:80]!r}): {out.get('ename')}: {out.get('evalue')}"
    return "cell unknown"


def run_notebooks(profile: str = "quick", parameters: dict | None = None, only=None,
                  output_dir: Path | None = None, kernel: str = "python3", log=print,
                  cell_timeout: int | None = None) -> list[Path]:
    """Execute the notebooks with ``profile`` and extra ``parameters``; return the executed paths.

    ``cell_timeout``: seconds a cell may run before it fails (None: no limit).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    output_dir = Path(output_dir or OUTPUTS_DIR / "notebooks")
    output_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MPLBACKEND", "Agg")
    params = {"profile": profile, **(parameters or {})}
    written = []
    for book in list_notebooks(only):
        out = output_dir / book.name
        start = time.time()
        log(f"[wildhands] {book.name} (profile {profile}) ...")
        try:
            pm.execute_notebook(str(book), str(out), parameters=params, kernel_name=kernel,
                                cwd=str(NOTEBOOKS_DIR), progress_bar=False, log_output=False,
                                execution_timeout=cell_timeout)
        except PapermillExecutionError as err:
            raise NotebookFailed(f"notebook {book.name} failed at {_failing_cell(out)}; "
                                 f"executed copy: {out}") from err
        log(f"[wildhands] {book.name} done in {time.time() - start:.0f} s -> {out}")
        written.append(out)
    return written


def parse_cli(argv: list[str]) -> tuple[str, dict, list]:
    """Parse ``--profile P``, ``-p name value`` pairs and ``--only PREFIX`` from ``argv``."""
    profile, params, only = "quick", {}, []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--profile", "--only") and i + 1 < len(argv):
            if arg == "--profile":
                profile = argv[i + 1]
            else:
                only.append(argv[i + 1])
            i += 2
        elif arg in ("-p", "--parameters") and i + 2 < len(argv):
            params[argv[i + 1]] = _parse_value(argv[i + 2])
            i += 3
        else:
            raise SystemExit(f"run_all.sh: unknown or incomplete argument {arg!r} "
                             "(use --profile smoke|quick|paper, -p name value, --only NN)")
    if profile not in ("smoke", "quick", "paper") and not Path(profile).is_file():
        raise SystemExit(f"run_all.sh: unknown profile {profile!r} (smoke, quick, paper, or a TOML path)")
    return profile, params, only


def _parse_value(text: str):
    import yaml  # papermill's own parameter parsing

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def main(argv=None) -> int:
    profile, params, only = parse_cli(list(sys.argv[1:] if argv is None else argv))
    try:
        run_notebooks(profile, params, only or None)
    except NotebookFailed as err:
        print(f"[wildhands] FAILED: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
