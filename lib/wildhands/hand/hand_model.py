"""The fixed hand-model decoder: MANO-format files through ``smplx``, without chumpy.

Owns: reading MANO-format pickles (the real MANO, whose arrays are chumpy objects,
or the project's open hand model), validating them, choosing the default model,
and ``HandModel``: a layer with no trainable parameters mapping shape betas, pose
PCA coefficients and a global rotation to vertices, MANO's 16 joints and the 21
keypoints in the OpenPose order (16 joints + 5 fingertip vertices), plus a
palm-centre keypoint interpolated from mesh vertices (for STB).

Pose convention: ``flat_hand_mean=False`` by default, as smplx: theta = 0 is the
model's ``hands_mean`` (for the open hand model: the mean of its pose corpus, a
relaxed, slightly flexed hand), so the prior |theta|^2 pulls towards a natural hand.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wildhands.config import TableSettings, settings_from_table
from wildhands.hand import keypoints as kp
from wildhands.paths import MANO_DIR, OPEN_HAND_PATH

# Fingertip vertex ids for the real MANO topology (thumb, index, middle, ring, pinky).
MANO_FINGERTIPS = {
    "smplx": (744, 320, 443, 554, 671),   # smplx's vertex_ids['mano']
    "paper": (745, 333, 444, 555, 672),   # released with Boukhayma et al. 2019
}
# Number of vertices averaged for the palm-centre keypoint when a file stores none.
PALM_NUM_VERTICES = 8

# key -> expected shape; V = vertices, F = faces, K = 16 joints, S = shape directions.
MANO_ARRAY_SHAPES = {
    "v_template": ("V", 3),
    "f": ("F", 3),
    "weights": ("V", "K"),
    "J_regressor": ("K", "V"),
    "kintree_table": (2, "K"),
    "shapedirs": ("V", 3, "S"),
    "posedirs": ("V", 3, 135),
    "hands_components": (45, 45),
    "hands_mean": (45,),
}
OPTIONAL_KEYS = ("fingertip_vertex_ids", "palm_vertex_ids", "palm_vertex_weights", "J",
                 "model_name", "model_version", "pose_prior")


class HandModelFileError(ValueError):
    """A MANO-format file that is missing, unreadable, or has wrong keys or shapes."""


class _ChumpyStandIn:
    """Receives the state of a pickled chumpy object so that its array can be recovered."""

    def __init__(self, *args, **kwargs):
        self._state = {}

    def __setstate__(self, state):
        self._state = state if isinstance(state, dict) else {"state": state}

    def to_array(self):
        for key in ("x", "a", "r"):
            value = self._state.get(key)
            if value is not None and not isinstance(value, _ChumpyStandIn):
                return np.asarray(value)
        raise TypeError(f"chumpy object without an array value (keys {sorted(self._state)})")


class _ChumpyFreeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyStandIn
        return super().find_class(module, name)


def _plain(value):
    """Turn chumpy stand-ins into numpy arrays and scipy sparse matrices into dense ones."""
    if isinstance(value, _ChumpyStandIn):
        return value.to_array()
    if hasattr(value, "toarray") and "scipy.sparse" in type(value).__module__:
        return np.asarray(value.toarray())
    return value


def load_mano_arrays(path) -> dict:
    """Read a MANO-format pickle into plain numpy arrays, validated; never imports chumpy."""
    path = Path(path)
    if not path.is_file():
        raise HandModelFileError(f"hand model file {path} does not exist")
    try:
        with open(path, "rb") as f:
            raw = _ChumpyFreeUnpickler(f, encoding="latin1").load()
    except Exception as err:  # a corrupt or non-pickle file
        raise HandModelFileError(f"hand model file {path} is not a readable MANO-format pickle: {err}") from err
    if not isinstance(raw, dict):
        raise HandModelFileError(f"hand model file {path}: expected a dict of arrays, got {type(raw).__name__}")
    data = {}
    for key, value in raw.items():
        try:
            data[key] = _plain(value)
        except TypeError as err:
            raise HandModelFileError(f"hand model file {path}, key {key!r}: {err}") from err
    _validate(path, data)
    return data


def _validate(path: Path, data: dict) -> None:
    sizes: dict[str, int] = {"K": kp.NUM_MANO_JOINTS}
    for key, spec in MANO_ARRAY_SHAPES.items():
        if key not in data:
            raise HandModelFileError(f"hand model file {path}: missing key {key!r} "
                                     f"(expected an array of shape {_spec_text(spec)})")
        arr = np.asarray(data[key])
        ok = arr.ndim == len(spec)
        if ok:
            for dim, want in zip(arr.shape, spec):
                if isinstance(want, str):
                    want = sizes.setdefault(want, dim)
                ok &= dim == want
        if not ok:
            raise HandModelFileError(f"hand model file {path}, key {key!r}: expected shape "
                                     f"{_spec_text(spec, sizes)}, got {arr.shape}")
        data[key] = arr
    if sizes["S"] < 1:
        raise HandModelFileError(f"hand model file {path}, key 'shapedirs': no shape directions")
    faces = data["f"]
    if faces.min() < 0 or faces.max() >= sizes["V"]:
        raise HandModelFileError(f"hand model file {path}, key 'f': vertex ids outside [0, {sizes['V']})")
    tips = data.get("fingertip_vertex_ids")
    if tips is not None and (np.asarray(tips).shape != (5,) or np.max(tips) >= sizes["V"]):
        raise HandModelFileError(f"hand model file {path}, key 'fingertip_vertex_ids': expected 5 vertex ids "
                                 f"below {sizes['V']} (thumb, index, middle, ring, pinky)")


def _spec_text(spec, sizes=None) -> str:
    sizes = sizes or {}
    return "(" + ", ".join(str(sizes.get(d, d)) for d in spec) + ")"


def default_hand_model_path(side: str = "right") -> Path:
    """The real MANO in params/mano/ when the user has put it there, else the open hand model.

    ``WILDHANDS_HAND_MODEL`` overrides both.
    """
    if os.environ.get("WILDHANDS_HAND_MODEL"):
        return Path(os.environ["WILDHANDS_HAND_MODEL"])
    mano = MANO_DIR / f"MANO_{side.upper()}.pkl"
    if mano.is_file():
        return mano
    if side != "right":
        raise HandModelFileError(f"no {mano}: the open hand model is right-handed; mirror left hands instead")
    return OPEN_HAND_PATH


def resolve_hand_model_path(path=None) -> Path:
    """``None`` or ``"auto"`` picks the default model; anything else is a file path."""
    if path in (None, "", "auto"):
        path = default_hand_model_path()
        if not Path(path).is_file():
            raise HandModelFileError(
                f"no hand model at {path}: build the open hand model with "
                "`python -m wildhands build-hand-model`, or put MANO_RIGHT.pkl in params/mano/")
    return Path(path)


def hand_model_hash(arrays: dict) -> str:
    """Identity of a hand model: a hash of the arrays that define its geometry and spaces."""
    digest = hashlib.sha256()
    for key in sorted(MANO_ARRAY_SHAPES) + ["fingertip_vertex_ids"]:
        if key in arrays and arrays[key] is not None:
            arr = np.ascontiguousarray(arrays[key], dtype=np.int64 if key in ("f", "kintree_table",
                                                                               "fingertip_vertex_ids") else np.float64)
            digest.update(key.encode())
            digest.update(np.round(arr, 7).tobytes() if arr.dtype == np.float64 else arr.tobytes())
    return digest.hexdigest()[:16]


def palm_vertices(arrays: dict, count: int = PALM_NUM_VERTICES) -> tuple[np.ndarray, np.ndarray]:
    """Vertex ids and weights of the palm-centre keypoint.

    Taken from the file when it stores them; otherwise the ``count`` template vertices
    nearest to the midpoint of the wrist and the middle-finger MCP joint, equally weighted.
    """
    if arrays.get("palm_vertex_ids") is not None:
        ids = np.asarray(arrays["palm_vertex_ids"], dtype=np.int64)
        weights = arrays.get("palm_vertex_weights")
        weights = np.full(len(ids), 1.0 / len(ids)) if weights is None else np.asarray(weights, np.float64)
        return ids, weights
    joints = arrays["J_regressor"] @ arrays["v_template"]
    target = 0.5 * (joints[kp.MANO_JOINT_NAMES.index("wrist")] + joints[kp.MANO_JOINT_NAMES.index("middle_mcp")])
    ids = np.argsort(np.linalg.norm(arrays["v_template"] - target, axis=1))[:count]
    return ids.astype(np.int64), np.full(count, 1.0 / count)


@dataclass
class HandOutput:
    """What ``HandModel`` returns; all in metres in the model frame, batch first."""
    vertices: torch.Tensor | None   # (B, V, 3)
    joints: torch.Tensor            # (B, 16, 3) MANO order
    keypoints: torch.Tensor         # (B, 21, 3) OpenPose order
    palm: torch.Tensor              # (B, 3) palm centre
    betas: torch.Tensor
    pose: torch.Tensor              # (B, num_pca_comps) as given
    global_orient: torch.Tensor     # (B, 3) axis-angle


class HandModel(nn.Module):
    """A MANO-format hand through ``smplx.MANO``: fixed, differentiable, no trainable parameters.

    ``path``: a MANO-format pickle, or None / "auto" for the default (params/mano/MANO_RIGHT.pkl
    when present, else the open hand model). ``fingertips``: "file" uses ids stored in the file
    (falling back to smplx's MANO ids), "smplx" or "paper" pick the MANO sets, or give 5 ids.
    """

    def __init__(self, path=None, num_pca_comps: int = 10, num_betas: int = 10,
                 flat_hand_mean: bool = False, fingertips="file", dtype=torch.float32):
        super().__init__()
        import smplx
        from smplx.utils import Struct

        if not 6 <= int(num_pca_comps) <= 45:
            raise ValueError(f"num_pca_comps: expected 6 to 45 pose coefficients, got {num_pca_comps}")
        self.path = resolve_hand_model_path(path)
        arrays = load_mano_arrays(self.path)
        if num_betas > arrays["shapedirs"].shape[-1]:
            raise ValueError(f"num_betas: {self.path} has {arrays['shapedirs'].shape[-1]} shape directions, "
                             f"asked for {num_betas}")
        self.hash = hand_model_hash(arrays)
        self.name = str(arrays.get("model_name", "MANO" if self.path.name.startswith("MANO") else self.path.stem))
        self.is_right = "LEFT" not in self.path.name.upper()
        self.num_pca_comps = int(num_pca_comps)
        self.num_betas = int(num_betas)
        self.flat_hand_mean = flat_hand_mean
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning about 10 < 300 betas
            self.mano = smplx.MANO(
                str(self.path), is_rhand=self.is_right, data_struct=Struct(**arrays),
                create_global_orient=False, create_hand_pose=False, create_betas=False, create_body_pose=False,
                create_transl=False, use_pca=True, num_pca_comps=self.num_pca_comps,
                flat_hand_mean=flat_hand_mean, num_betas=self.num_betas, dtype=dtype)
        self.faces = np.asarray(arrays["f"], dtype=np.int64)
        self.fingertip_ids = self._fingertips(arrays, fingertips)
        palm_ids, palm_weights = palm_vertices(arrays)
        self.register_buffer("tip_index", torch.as_tensor(self.fingertip_ids, dtype=torch.long), persistent=False)
        self.register_buffer("palm_index", torch.as_tensor(palm_ids), persistent=False)
        self.register_buffer("palm_weights", torch.as_tensor(palm_weights, dtype=dtype), persistent=False)
        self.register_buffer("openpose_index", torch.as_tensor(kp.MANO_TO_OPENPOSE), persistent=False)
        for p in self.parameters():  # none are expected; guard against smplx changes
            p.requires_grad_(False)

    @staticmethod
    def _fingertips(arrays: dict, fingertips) -> np.ndarray:
        if isinstance(fingertips, str):
            if fingertips == "file":
                stored = arrays.get("fingertip_vertex_ids")
                ids = MANO_FINGERTIPS["smplx"] if stored is None else stored
            elif fingertips in MANO_FINGERTIPS:
                ids = MANO_FINGERTIPS[fingertips]
            else:
                raise ValueError(f"fingertips: expected 'file', 'smplx', 'paper' or 5 ids, got {fingertips!r}")
        else:
            ids = fingertips
        ids = np.asarray(ids, dtype=np.int64)
        if ids.shape != (5,) or ids.max() >= len(arrays["v_template"]):
            raise ValueError(f"fingertips: need 5 vertex ids below {len(arrays['v_template'])}, got {ids.tolist()}")
        return ids

    @property
    def dtype(self) -> torch.dtype:
        return self.mano.shapedirs.dtype

    @property
    def device(self) -> torch.device:
        return self.mano.shapedirs.device

    @property
    def num_vertices(self) -> int:
        return self.mano.v_template.shape[0]

    def zeros(self, batch_size: int = 1) -> dict:
        """Neutral parameters (mean shape, theta = 0, identity rotation) for ``batch_size`` hands."""
        z = lambda n: torch.zeros(batch_size, n, dtype=self.dtype, device=self.device)  # noqa: E731
        return {"betas": z(self.num_betas), "pose": z(self.num_pca_comps), "global_orient": z(3)}

    def forward(self, betas=None, pose=None, global_orient=None, transl=None,
                return_vertices: bool = True) -> HandOutput:
        given = [t for t in (betas, pose, global_orient) if t is not None]
        batch = given[0].shape[0] if given else 1
        neutral = self.zeros(batch)
        betas = neutral["betas"] if betas is None else self._check("betas", betas, self.num_betas, batch)
        pose = neutral["pose"] if pose is None else self._check("pose", pose, self.num_pca_comps, batch)
        global_orient = (neutral["global_orient"] if global_orient is None
                         else self._check("global_orient", global_orient, 3, batch))
        out = self.mano(betas=betas, global_orient=global_orient, hand_pose=pose, transl=transl)
        vertices = out.vertices
        tips = vertices.index_select(1, self.tip_index)
        keypoints = torch.cat([out.joints, tips], dim=1).index_select(1, self.openpose_index)
        palm = torch.einsum("bvc,v->bc", vertices.index_select(1, self.palm_index), self.palm_weights)
        return HandOutput(vertices=vertices if return_vertices else None, joints=out.joints,
                          keypoints=keypoints, palm=palm, betas=betas, pose=pose, global_orient=global_orient)

    def _check(self, name: str, value: torch.Tensor, width: int, batch: int) -> torch.Tensor:
        if not torch.is_tensor(value):
            value = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        if value.ndim != 2 or value.shape != (batch, width):
            raise ValueError(f"{name}: expected shape ({batch}, {width}), got {tuple(value.shape)}")
        return value.to(self.dtype)

    def extra_repr(self) -> str:
        return (f"name={self.name}, path={self.path}, hash={self.hash}, vertices={self.num_vertices}, "
                f"pca={self.num_pca_comps}, betas={self.num_betas}, flat_hand_mean={self.flat_hand_mean}")


@dataclass(frozen=True)
class HandModelSettings(TableSettings):
    """The ``[hand_model]`` table: ``HandModel``'s file ("auto": ``default_hand_model_path``), pose
    coefficients, shape directions, pose convention and fingertip vertices."""
    TABLE = "hand_model"
    path: str
    num_pca_comps: int
    num_betas: int
    flat_hand_mean: bool
    fingertips: str | list     # file | smplx | paper | 5 vertex ids


def hand_model_from_config(config: dict, dtype=torch.float32, **overrides) -> HandModel:
    """Build the ``HandModel`` a profile describes (its ``[hand_model]`` table, ``HandModelSettings``);
    ``overrides``: settings that replace the table's (e.g. ``num_pca_comps=45``)."""
    settings = settings_from_table(HandModelSettings, config, HandModelSettings.TABLE, **overrides)
    return HandModel(settings.path, num_pca_comps=settings.num_pca_comps, num_betas=settings.num_betas,
                     flat_hand_mean=settings.flat_hand_mean, fingertips=settings.fingertips, dtype=dtype)


def rest_keypoints(model: HandModel, betas=None) -> torch.Tensor:
    """(21, 3) keypoints of the unposed (flat) hand for shape ``betas`` (zero by default)."""
    mano = model.mano
    betas = torch.zeros(model.num_betas, dtype=model.dtype, device=model.device) if betas is None else \
        torch.as_tensor(betas, dtype=model.dtype, device=model.device)
    vertices = mano.v_template + torch.einsum("vcs,s->vc", mano.shapedirs, betas)
    joints = mano.J_regressor @ vertices
    return torch.cat([joints, vertices[model.tip_index]]).index_select(0, model.openpose_index)


def hand_measurements(model: HandModel, betas=None) -> dict:
    """Anthropometric measurements of the flat hand in millimetres (zero shape by default).

    Hand length runs from the wrist keypoint to the middle fingertip; segment lengths are
    between consecutive keypoints of each finger, from the wrist; palm breadth is the
    index-MCP to pinky-MCP distance.
    """
    with torch.no_grad():
        k = rest_keypoints(model, betas).cpu().double().numpy() * 1000
    segments = {}
    for finger in kp.FINGERS:
        chain = (0,) + kp.FINGER_KEYPOINTS[finger]
        segments[finger] = [float(np.linalg.norm(k[b] - k[a])) for a, b in zip(chain[:-1], chain[1:])]
    return {
        "model": model.name,
        "vertices": model.num_vertices,
        "faces": int(len(model.faces)),
        "hand_length_mm": float(np.linalg.norm(k[kp.FINGERTIPS[2]] - k[0])),
        "palm_breadth_mm": float(np.linalg.norm(k[5] - k[17])),
        "segment_lengths_mm": segments,
        "finger_lengths_mm": {f: float(sum(s[1:])) for f, s in segments.items()},
    }
