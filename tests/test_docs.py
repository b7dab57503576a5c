"""The docs follow the code: architecture.md's module table and the names it cites, its figure, and the
README's results table, which must agree with the metrics recorded in the shipped checkpoint."""
from __future__ import annotations

import difflib
import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PACKAGES = ("hand", "fit", "data", "net", "eval", "app", "config", "fileio", "paths", "cli")


@pytest.fixture(scope="module")
def scripts():
    sys.path.insert(0, str(DOCS))
    try:
        yield importlib.import_module("make_architecture"), importlib.import_module("make_results")
    finally:
        sys.path.remove(str(DOCS))


def _diff(expected: str, actual: str) -> str:
    return "\n".join(difflib.unified_diff(actual.splitlines(), expected.splitlines(), "committed", "generated",
                                          lineterm="", n=0))


def test_architecture_module_table_matches_the_code(scripts):
    architecture, _ = scripts
    document = architecture.DOC.read_text()
    expected = architecture.with_table(document, architecture.module_table(architecture.import_graph()))
    assert expected == document, "run docs/make_architecture.py:\n" + _diff(expected, document)


def _resolves(dotted: str) -> bool:
    """True if ``wildhands.<dotted>`` is a module or an attribute of one (classes and methods included)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module("wildhands." + ".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_every_name_architecture_md_cites_exists():
    text = (DOCS / "architecture.md").read_text().split("<!-- modules:begin")[0]
    cited = set(re.findall(rf"\b((?:{'|'.join(PACKAGES)})(?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text))
    assert len(cited) > 40
    missing = sorted(name for name in cited if not _resolves(name))
    assert not missing, f"docs/architecture.md cites names the code no longer has: {missing}"


def test_the_package_figure_is_drawn_from_the_imports_and_current(scripts, tmp_path):
    architecture, _ = scripts
    graph = architecture.import_graph()
    assert graph["edges"][("hand", "net")] >= 1 and ("net", "hand") not in graph["edges"]
    figure = architecture.draw(graph, tmp_path / "architecture.png")
    assert figure.stat().st_size > 20_000
    assert architecture.drawn_content(figure) == architecture.figure_content(graph)
    assert architecture.drawn_content(architecture.FIGURE) == architecture.figure_content(graph), \
        "docs/architecture.png is stale: run docs/make_architecture.py"


def test_the_readme_links_the_architecture_page():
    readme = (ROOT / "README.md").read_text()
    assert "(docs/architecture.md)" in readme and "../shared/DESIGN.md" not in readme


def test_readme_results_table_matches_the_shipped_checkpoint(scripts):
    from wildhands.net.checkpoints import read_checkpoint

    _, results = scripts
    payload = read_checkpoint(results.CHECKPOINT)
    readme = results.README.read_text()
    expected = results.readme_with_results(readme, payload)
    assert expected == readme, "run docs/make_results.py:\n" + _diff(expected, readme)
    recorded = f"| {payload['metrics']['mpjpe_3d_mm']:.1f} |"
    assert recorded in readme.split(results.BEGIN)[1].split(results.END)[0]


def test_results_table_check_fails_on_a_changed_or_missing_metric(scripts):
    from wildhands.net.checkpoints import read_checkpoint

    _, results = scripts
    payload = read_checkpoint(results.CHECKPOINT)
    readme = results.README.read_text()
    changed = {**payload, "metrics": {**payload["metrics"], "error_2d_px_detector_noise": 99.0}}
    assert "| 99.0 |" in results.readme_with_results(readme, changed)
    missing = {**payload, "metrics": {k: v for k, v in payload["metrics"].items() if k != "mpjpe_3d_mm"}}
    with pytest.raises(KeyError, match="mpjpe_3d_mm"):
        results.results_table(missing)
    with pytest.raises(ValueError, match="markers"):
        results.readme_with_results(readme.replace(results.END, ""), payload)
