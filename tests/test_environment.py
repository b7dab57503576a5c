"""The environment files agree, and the rules of the project's layout hold."""
import re
import subprocess
from pathlib import Path

import pytest

from wildhands.app.notebook_runner import list_notebooks, parse_cli

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    return {m.group(1).lower(): m.group(2) for m in (re.match(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", l)
                                                    for l in lines) if m}


def test_environment_yml_lists_the_same_pins_as_requirements():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    env = _pins((ROOT / "environment.yml").read_text().splitlines())
    assert req and req == env


def test_key_pins_and_no_chumpy():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    assert req["torch"] == "2.14.1" and req["torchvision"] == "0.29.1" and req["mediapipe"] == "0.10.21"
    assert req["numpy"].startswith("1.")
    text = (ROOT / "requirements.txt").read_text() + (ROOT / "environment.yml").read_text()
    assert "chumpy" not in text.lower()
    assert "opencv-python" not in text.replace("opencv-contrib-python", "")  # one OpenCV only


def test_installed_packages_match_pins():
    from importlib.metadata import version

    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    for name in ("torch", "numpy", "smplx", "mediapipe", "opencv-contrib-python", "scipy"):
        assert version(name).split("+")[0] == req[name]


def test_run_all_argument_parsing():
    assert parse_cli(["--profile", "smoke", "-p", "steps", "5", "-p", "name", "x"]) == \
        ("smoke", {"steps": 5, "name": "x"}, [])
    with pytest.raises(SystemExit, match="unknown profile"):
        parse_cli(["--profile", "huge"])
    with pytest.raises(SystemExit, match="unknown or incomplete"):
        parse_cli(["-p", "only_name"])


def test_notebooks_are_ordered_and_start_with_parameters():
    import nbformat

    books = list_notebooks()
    assert books and books[0].name.startswith("00_")
    for book in books:
        nb = nbformat.read(book, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{book.name}: needs exactly one papermill 'parameters' cell"
        assert "profile" in tagged[0].source


def test_no_licensed_or_calibration_files_tracked():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not [f for f in files if re.search(r"MANO_(RIGHT|LEFT)\.(pkl|npz)$", f)]
    assert not [f for f in files if "real_photos" in f]
    assert not [f for f in files if re.search(r"dexycb.*\.npz$", f, re.IGNORECASE)]  # DexYCB's poses stay in ../shared


def test_the_default_test_run_leaves_the_slow_tests_to_ci():
    script = (ROOT / "run_tests.sh").read_text()
    assert '-m "not slow"' in script and "--all" in script and "source scripts/venv.sh" in script
    assert "./run_tests.sh --all" in (ROOT / ".ci" / "run").read_text()
    assert "slow:" in (ROOT / "pyproject.toml").read_text()   # the marker is registered
