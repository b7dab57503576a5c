"""The packages follow the data flow: a module imports only from its own package or from those below it."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib" / "wildhands"
# Bottom to top. The top-level helpers (paths, fileio, config) sit below everything; cli above everything.
LAYERS = ("base", "hand", "fit", "data", "net", "eval", "app", "cli")
BASE_MODULES = {"paths", "fileio", "config", ""}


def layer_of(module: str) -> str:
    """'wildhands.data.crops' -> 'data'; 'wildhands.paths' -> 'base'; 'wildhands.cli' -> 'cli'."""
    parts = module.split(".")[1:]
    head = parts[0] if parts else ""
    if head in BASE_MODULES:
        return "base"
    if head in ("cli", "__main__"):
        return "cli"
    return head


def module_name(path: Path) -> str:
    rel = path.relative_to(LIB.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def wildhands_imports(path: Path):
    """(line, imported module or package) for every import of wildhands in the file, function-local ones included."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("wildhands"):
                yield node.lineno, target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("wildhands"):
                    yield node.lineno, alias.name


def violations() -> list[str]:
    found = []
    for path in sorted(LIB.rglob("*.py")):
        own = layer_of(module_name(path))
        for line, target in wildhands_imports(path):
            layer = layer_of(target)
            if LAYERS.index(layer) > LAYERS.index(own):
                found.append(f"{path.relative_to(LIB)}:{line} ({own}) imports {target} ({layer})")
    return found


def test_packages_import_only_downwards():
    assert violations() == []


def test_the_hand_model_and_camera_import_nothing_of_data_training_or_prediction():
    for name in ("hand_model", "camera", "keypoints", "keypoint_model", "parameters"):
        for _, target in wildhands_imports(LIB / "hand" / f"{name}.py"):
            assert layer_of(target) in ("base", "hand"), (name, target)


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "wildhands"
    (fake / "hand").mkdir(parents=True)
    (fake / "hand" / "camera.py").write_text("from wildhands.net.train import train\n")
    monkeypatch.setattr(sys.modules[__name__], "LIB", fake)
    assert violations() == ["hand/camera.py:1 (hand) imports wildhands.net.train (net)"]


def test_no_function_hides_a_wildhands_import():
    """Imports of the project sit at the top of each module; only the CLI defers its commands' imports."""
    hidden = []
    for path in sorted(LIB.rglob("*.py")):
        if path.name in ("cli.py", "__main__.py"):
            continue
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                module = node.module or "" if isinstance(node, ast.ImportFrom) else node.names[0].name
                if getattr(node, "level", 0) or module.startswith("wildhands"):
                    hidden.append(f"{path.relative_to(LIB)}:{node.lineno} {module}")
    assert hidden == []


@pytest.mark.slow
@pytest.mark.parametrize("package", ["hand", "fit", "data", "net", "eval", "app"])
def test_each_package_imports_on_its_own(package):
    """No import cycle: each package imports in a fresh interpreter, before anything above it."""
    subprocess.run([sys.executable, "-c", f"import wildhands.{package}, pkgutil, importlib\n"
                    f"for m in pkgutil.walk_packages(wildhands.{package}.__path__, 'wildhands.{package}.'):\n"
                    f"    importlib.import_module(m.name)"], check=True)
