"""Shared fixtures: a small synthetic MANO-format hand written the way real MANO files are, and the
labelled photos (the real ones when present, else an in-repo stand-in in their format)."""
from __future__ import annotations

import json
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from wildhands.hand import keypoints as kp
from wildhands.paths import REAL_PHOTOS_DIR

LABELLED_HANDS_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "labelled_hands"

# Rest joint positions (metres) of a toy right hand in MANO's joint order, and tip offsets.
_FINGER_BASES = {"index": (0.09, 0.0, 0.02), "middle": (0.095, 0.0, 0.0), "pinky": (0.08, 0.0, -0.04),
                 "ring": (0.09, 0.0, -0.02), "thumb": (0.03, 0.0, 0.03)}
_SEGMENT = 0.025


def toy_mano_arrays(seed: int = 0, num_betas: int = 10) -> dict:
    rng = np.random.default_rng(seed)
    joints = [np.zeros(3)]
    tips = {}
    for finger in ("index", "middle", "pinky", "ring", "thumb"):
        base = np.array(_FINGER_BASES[finger])
        direction = np.array([1.0, 0.0, 0.6 if finger == "thumb" else 0.0])
        direction /= np.linalg.norm(direction)
        for j in range(3):
            joints.append(base + j * _SEGMENT * direction)
        tips[finger] = base + 3 * _SEGMENT * direction
    joints = np.array(joints)
    offsets = 0.005 * np.array([[0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=float)
    verts = (joints[:, None, :] + offsets[None]).reshape(-1, 3)
    tip_ids = []
    for finger in kp.MANO_TIP_ORDER:
        tip_ids.append(len(verts))
        verts = np.vstack([verts, tips[finger]])
    num_v = len(verts)
    owner = np.concatenate([np.repeat(np.arange(16), 4), [3, 6, 12, 9, 15]])  # tips skin to the last joint
    weights = np.zeros((num_v, 16))
    weights[np.arange(num_v), owner] = 1.0
    regressor = np.zeros((16, num_v))
    for j in range(16):
        regressor[j, 4 * j:4 * j + 4] = 0.25
    faces = np.array([[i, i + 1, i + 2] for i in range(0, num_v - 2, 2)], dtype=np.uint32)
    kintree = np.array([[4294967295] + list(kp.MANO_PARENTS[1:]), list(range(16))], dtype=np.int64)
    components = np.linalg.qr(rng.normal(size=(45, 45)))[0].T * 0.3
    return {
        "v_template": verts, "f": faces, "weights": weights, "J_regressor": regressor,
        "kintree_table": kintree, "shapedirs": rng.normal(scale=1e-3, size=(num_v, 3, num_betas)),
        "posedirs": np.zeros((num_v, 3, 135)), "hands_components": components,
        "hands_mean": rng.normal(scale=0.1, size=45), "fingertip_vertex_ids": np.array(tip_ids),
        "J": joints,
    }


def write_chumpy_style_pickle(path, arrays: dict, sparse_regressor: bool = True) -> None:
    """Pickle ``arrays`` as the official MANO files are: arrays inside ``chumpy.ch.Ch`` objects."""
    import scipy.sparse

    module = types.ModuleType("chumpy.ch")

    class Ch:  # stands for chumpy.ch.Ch while pickling; chumpy itself is never imported
        def __init__(self, x):
            self.x = np.asarray(x)

        def __getstate__(self):
            return {"x": self.x, "_dirty_vars": set(), "_itr": None}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    module.Ch = Ch
    package = types.ModuleType("chumpy")
    package.ch = module
    saved = {name: sys.modules.get(name) for name in ("chumpy", "chumpy.ch")}
    sys.modules.update({"chumpy": package, "chumpy.ch": module})
    try:
        data = dict(arrays)
        data.pop("fingertip_vertex_ids", None)
        for key in ("shapedirs", "v_template", "J"):
            data[key] = Ch(data[key])
        if sparse_regressor:
            data["J_regressor"] = scipy.sparse.csc_matrix(data["J_regressor"])
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=2)
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


@pytest.fixture
def toy_mano_path(tmp_path):
    """A small MANO-format hand (plain arrays), with its fingertip ids stored in the file."""
    path = tmp_path / "TOY_RIGHT.pkl"
    with open(path, "wb") as f:
        pickle.dump(toy_mano_arrays(), f, protocol=2)
    return path


@pytest.fixture(scope="session")
def labelled_photos() -> tuple[Path, list]:
    """(folder, labels) of labelled hand photos: ../shared/real_photos (or WILDHANDS_REAL_PHOTOS)
    when present, else tests/fixtures/labelled_hands, rendered hands in the same format (see its
    make_labelled_hands.py), so that the tests reading them run in a fresh clone too."""
    folder = REAL_PHOTOS_DIR if (REAL_PHOTOS_DIR / "labels.json").is_file() else LABELLED_HANDS_FIXTURE
    return folder, json.loads((folder / "labels.json").read_text())


def pytest_collection_modifyitems(config, items):
    """The notebook tests first: they run longest, and when a worker started them last they made
    the tail of the parallel run (stable sort: the rest keep their order)."""
    items.sort(key=lambda item: item.path.name != "test_notebooks.py")
