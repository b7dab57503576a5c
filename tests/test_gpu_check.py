"""scripts/gpu_check.py where no GPU is: its message, and the profile it hands to torchrun."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

from wildhands.config import load_profile
from wildhands.paths import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "gpu_check.py"


def test_without_a_cuda_device_it_says_so_and_measures_nothing(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--report", str(tmp_path / "report.json")],
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.startswith("[gpu_check] no CUDA device:") and "Nothing measured" in done.stdout
    assert "./run_all.sh --profile paper-dryrun" in done.stdout and "Traceback" not in done.stderr
    assert not (tmp_path / "report.json").exists()


def test_the_torchrun_profile_holds_the_measurement_settings(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    config = gpu_check.paper_config("cuda", tiny=False)
    path = tmp_path / "gpu-check.toml"
    path.write_text(gpu_check._as_toml_overrides(config))
    again = load_profile(str(path))
    assert again == config
    assert (again["model"]["backbone"], again["model"]["input_size"], again["pretrain"]["batch_size"]) == \
        ("resnet50", 320, 64)
    assert again["model"]["pretrained"] == "" and again["device"] == "cuda" and again["optim"]["amp"] == "bf16"
