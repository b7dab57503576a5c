"""The package map of docs/architecture.md, drawn from the imports that lib/wildhands really has.

    .venv/bin/python docs/make_architecture.py            # rewrite docs/architecture.png and the module table
    .venv/bin/python docs/make_architecture.py --check    # exit 1 if the figure or the module table is stale

Every module of lib/wildhands (the files git tracks, or every file outside a git checkout) is
parsed with ``ast``; its package is its first directory (``data/datasets/stb.py`` belongs to
``data``), and the top-level paths, fileio and config form the base. The figure draws the
packages in data-flow order with their modules, and one arrow per pair of packages that import
one another; the PNG also stores what it draws, as text. The table between the markers in
architecture.md lists each module with the first sentence of its docstring. tests/test_docs.py
fails when either no longer matches the code.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "wildhands"
DOC = ROOT / "docs" / "architecture.md"
FIGURE = ROOT / "docs" / "architecture.png"
BEGIN, END = "<!-- modules:begin (docs/make_architecture.py) -->", "<!-- modules:end -->"
# Data-flow order, bottom to top: what tests/test_layering.py enforces.
PACKAGES = ("base", "hand", "fit", "data", "net", "eval", "app", "cli")
BASE_MODULES = ("paths", "fileio", "config")
SUMMARY_CHARS = 120


def module_files() -> list[Path]:
    """The library's .py files: those git tracks (so work in progress is left out), else all of them."""
    listed = subprocess.run(["git", "ls-files", "--", "*.py"], cwd=LIB, capture_output=True, text=True)
    if listed.returncode == 0 and listed.stdout.strip():
        return sorted(LIB / name for name in listed.stdout.split() if (LIB / name).is_file())
    return sorted(LIB.rglob("*.py"))


def module_name(path: Path) -> str:
    """lib/wildhands/data/datasets/stb.py -> 'data.datasets.stb'; a package's __init__ -> the package."""
    parts = list(path.relative_to(LIB).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    """'data.crops' -> 'data'; 'paths' (and the package itself, '') -> 'base'; 'cli', '__main__' -> 'cli'."""
    head = module.split(".")[0]
    if head in BASE_MODULES or head == "":
        return "base"
    if head in ("cli", "__main__"):
        return "cli"
    return head


def imported_modules(path: Path) -> set[str]:
    """The wildhands modules ``path`` imports (names relative to wildhands, relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    own = module_name(path).split(".")
    package = own if path.name == "__init__.py" else own[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
                found.add(target)
            elif (node.module or "").startswith("wildhands"):
                found.add(node.module.partition(".")[2])
        elif isinstance(node, ast.Import):
            found.update(a.name.partition(".")[2] for a in node.names if a.name.startswith("wildhands"))
    return found


def summary(path: Path) -> str:
    """The first sentence of the module's docstring, on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    sentence = re.split(r"\.\s+(?=[A-Z`])", paragraph)[0].rstrip(".").replace("|", "/")
    if len(sentence) > SUMMARY_CHARS:
        sentence = sentence[:SUMMARY_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + " ..."
    return sentence


def import_graph() -> dict:
    """{'modules': {name: (package, summary, imported packages)}, 'edges': {(from, to): modules importing}}."""
    modules, edges = {}, defaultdict(int)
    for path in module_files():
        name = module_name(path)
        if not name or name == "__main__":
            continue
        own = package_of(name)
        uses = sorted({package_of(m) for m in imported_modules(path)} - {own}, key=PACKAGES.index)
        modules[name] = (own, summary(path), uses)
        for used in uses:
            edges[(used, own)] += 1
    return {"modules": modules, "edges": dict(edges)}


def module_table(graph: dict) -> str:
    """The markdown table written between the markers of architecture.md."""
    lines = ["| package | module | owns (its docstring) |", "|---|---|---|"]
    ordered = sorted(graph["modules"].items(), key=lambda item: (PACKAGES.index(item[1][0]), item[0]))
    for name, (package, text, _) in ordered:
        shown = name.partition(".")[2] or "(package)" if "." in name or package not in ("base", "cli") else name
        lines.append(f"| {package} | `{shown}` | {text} |")
    return "\n".join(lines)


def replace_between(document: str, begin: str, end: str, text: str, name: str = "document") -> str:
    """``document`` with what lies between the markers ``begin`` and ``end`` replaced by ``text``."""
    if document.count(begin) != 1 or document.count(end) != 1:
        raise ValueError(f"{name}: expected the markers {begin!r} and {end!r} once each")
    head, rest = document.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{text}\n{end}{tail}"


def update_document(argv, description: str, path: Path, current: str, source: str, script: str) -> int:
    """The entry point of a script that writes a table into ``path``: ``current`` is the document as it
    should read (from ``source``); with ``--check`` in ``argv``, exit 1 when ``path`` differs, else
    write it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="only check that the document's table is current")
    args = parser.parse_args(argv)
    if args.check:
        if current != path.read_text():
            print(f"{path}'s table disagrees with {source}: run {script}", file=sys.stderr)
            return 1
        return 0
    path.write_text(current)
    print(f"wrote the table of {path} from {source}")
    return 0


def with_table(document: str, table: str) -> str:
    """architecture.md's text with ``table`` between its module markers."""
    return replace_between(document, BEGIN, END, table, str(DOC))


def figure_content(graph: dict) -> dict:
    """What the figure draws: each package's box lines and the pairs of packages that import one another."""
    return {"boxes": {p: _box_lines(graph, p) for p in PACKAGES},
            "edges": sorted(list(pair) for pair in graph["edges"])}


def drawn_content(path: Path) -> dict:
    """``figure_content`` as stored in the PNG at ``path`` (empty if it holds none)."""
    from PIL import Image

    with Image.open(path) as image:
        return json.loads(image.info.get("Description", "{}"))


def _box_lines(graph: dict, package: str) -> list[str]:
    """Module names of ``package`` for its box; a subpackage's modules folded into one line."""
    names = sorted(n for n, (p, _, _) in graph["modules"].items() if p == package)
    lines, folded = [], defaultdict(list)
    for name in names:
        parts = name.split(".")
        inner = parts[1:] if package != "base" else parts
        if len(inner) == 2:
            folded[inner[0]].append(inner[1])
        elif inner and inner[0] not in folded:
            lines.append(inner[0])
    for sub, members in folded.items():
        lines = [line for line in lines if line != sub]
        lines.append(f"{sub}/ ({len(members)} modules)")
    return lines


def _draw_package(ax, x: float, top: float, width: float, package: str, lines: list[str], line: float) -> None:
    from matplotlib.patches import FancyBboxPatch

    height = line * (len(lines) + 2.0)
    ax.add_patch(FancyBboxPatch((x, top - height), width, height, boxstyle="round,pad=0.05", fc="#eef3fb",
                                ec="#35609c"))
    ax.text(x + width / 2, top - 0.32, package if package == "cli" else f"{package}/", ha="center", weight="bold",
            fontsize=10)
    for k, text in enumerate(lines):
        ax.text(x + 0.12, top - 0.7 - k * line, text, fontsize=7.5, family="monospace")


def draw(graph: dict, path: Path) -> Path:
    """Draw the packages in data-flow order, their modules, and who imports whom, into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    upper = [p for p in PACKAGES if p != "base"]
    width, gap, line, top = 2.7, 0.45, 0.26, 0.0
    boxes = {p: _box_lines(graph, p) for p in upper}
    depth = line * (max(len(b) for b in boxes.values()) + 2.0)
    span = len(upper) * (width + gap) - gap
    edges = [pair for pair in figure_content(graph)["edges"] if pair[0] != "base"]
    reach = max((upper.index(b) - upper.index(a) for a, b in edges), default=1)
    fig, ax = plt.subplots(figsize=(span * 0.62, (depth + 1.3 + 0.33 * reach * (width + gap)) * 0.62))
    for i, package in enumerate(upper):
        _draw_package(ax, i * (width + gap), top, width, package, boxes[package], line)
    base = "   ".join(_box_lines(graph, "base"))
    ax.add_patch(FancyBboxPatch((0, -depth - 1.0), span, 0.55, boxstyle="round,pad=0.05", fc="#f3f3f3",
                                ec="#777777"))
    ax.text(span / 2, -depth - 0.78, f"base: {base}   (imported by every package)", ha="center", fontsize=9)
    for used, user in edges:
        a, b = upper.index(used), upper.index(user)
        # spread the ends along the box tops: a source's arrows by target, a target's by source
        x0 = a * (width + gap) + width * (0.5 + 0.07 * (b - a))
        x1 = b * (width + gap) + width * (0.45 - 0.07 * (b - a))
        rad = -0.55
        ax.add_patch(FancyArrowPatch((x0, top + 0.08), (x1, top + 0.08), arrowstyle="-|>", mutation_scale=10,
                                     connectionstyle=f"arc3,rad={rad}", color="#35609c", lw=0.9))
    ax.set_xlim(-0.3, span + 0.3)
    ax.set_ylim(-depth - 1.2, top + 0.3 + 0.3 * reach * (width + gap))
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("lib/wildhands: packages in data-flow order; an arrow A -> B: modules of B import A", fontsize=10)
    fig.tight_layout()
    # what the figure shows, as text in the PNG, so that a test can tell when the figure is stale
    fig.savefig(path, dpi=110, metadata={"Software": None, "Description": json.dumps(figure_content(graph))})
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that architecture.md's table is current")
    parser.add_argument("--figure", type=Path, default=FIGURE, help=f"where to draw (default {FIGURE})")
    args = parser.parse_args(argv)
    graph = import_graph()
    document = DOC.read_text()
    current = with_table(document, module_table(graph))
    if args.check:
        stale = [str(p) for p, fresh in ((DOC, current == document),
                                          (FIGURE, drawn_content(FIGURE) == figure_content(graph))) if not fresh]
        if stale:
            print(f"stale: {', '.join(stale)}; run {Path(__file__).relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale else 0
    if current != document:
        DOC.write_text(current)
    print(f"wrote {draw(graph, args.figure)} and the module table of {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
