"""Where the project keeps things: parameters, outputs, the default hand models."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("WILDHANDS_ROOT", Path(__file__).resolve().parents[2]))
PARAMS_DIR = PROJECT_ROOT / "params"
PROFILES_DIR = PARAMS_DIR / "profiles"
MANO_DIR = PARAMS_DIR / "mano"
OPEN_HAND_PATH = PARAMS_DIR / "hand_models" / "OPEN_HAND_RIGHT.pkl"
OUTPUTS_DIR = Path(os.environ.get("WILDHANDS_OUTPUTS", PROJECT_ROOT / "outputs"))
SHARED_DIR = PROJECT_ROOT.parent / "shared"
REAL_PHOTOS_DIR = Path(os.environ.get("WILDHANDS_REAL_PHOTOS", SHARED_DIR / "real_photos"))


def output_dir(*parts: str) -> Path:
    """Return ``outputs/<parts>``, created if missing."""
    path = OUTPUTS_DIR.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
