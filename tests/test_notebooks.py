"""The notebooks run headlessly under papermill in the smoke profile, in order.

The default test run executes the first notebook (the hand model: it needs nothing the others
write); ``./run_tests.sh --all`` adds the rest (marked slow), each after the ones it reads from.
"""
import json

import pytest

from wildhands.app.notebook_runner import NotebookFailed, list_notebooks, run_notebooks

FIRST = "00_hand_model.ipynb"


def _run_in_smoke_profile(books, outputs):
    written = []
    for book in books:
        for attempt in (1, 2):
            try:
                written += run_notebooks("smoke", output_dir=outputs / "notebooks", only=[book.name],
                                         log=lambda *_: None, cell_timeout=300)
                break
            except Exception:
                # A headless kernel very occasionally loses a widget (k3d) message and the client
                # waits forever; the cell timeout turns that into an error, and one retry follows.
                if attempt == 2:
                    raise
    return written


def test_hand_model_notebook_runs_in_smoke_profile(tmp_path, monkeypatch):
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("WILDHANDS_OUTPUTS", str(outputs))  # the kernels inherit it; nothing lands in outputs/
    first = list_notebooks()[0]
    assert first.name == FIRST
    assert [p.name for p in _run_in_smoke_profile([first], outputs)] == [FIRST]
    assert (outputs / "viewer" / "00_hand_model.html").stat().st_size > 10_000
    metrics = json.loads((outputs / "metrics" / "00_hand_model.json").read_text())
    assert 160 <= metrics["hand_length_mm"] <= 200


@pytest.mark.slow
def test_the_other_notebooks_run_in_smoke_profile_in_order(tmp_path, monkeypatch):
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("WILDHANDS_OUTPUTS", str(outputs))
    rest = [book for book in list_notebooks() if book.name != FIRST]
    written = _run_in_smoke_profile(rest, outputs)
    assert [p.name for p in written] == [p.name for p in rest]
    assert (outputs / "metrics" / "04_evaluate.json").is_file()


def test_failure_names_notebook_and_cell(tmp_path, monkeypatch):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    import wildhands.app.notebook_runner as runner

    books = tmp_path / "notebooks"
    books.mkdir()
    nb = new_notebook(cells=[new_code_cell("profile = 'smoke'", metadata={"tags": ["parameters"]}),
                             new_code_cell("x = 1"), new_code_cell("raise ValueError('boom')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, books / "00_broken.ipynb")
    monkeypatch.setattr(runner, "NOTEBOOKS_DIR", books)
    with pytest.raises(NotebookFailed, match=r"00_broken.ipynb failed at cell \d+ .*ValueError: boom"):
        run_notebooks("smoke", output_dir=tmp_path / "out", log=lambda *_: None)
