"""The synthetic pretraining set (paper section 6): hands rendered from the hand model itself.

Sampling (ranges in the profile's ``[synthetic]`` table): pose coefficients uniform in
[-r, r]^10 (r = 2), shape N(0, 1) clipped at 2 (the ``paper`` profile: uniform in
[-0.03, 0.03]), a global rotation over the views photographs show (defined in the hand's
anatomical frame, so it suits any MANO-format model), and scale and translation so that the
hand fills the crop as a 2.2 l crop of a real hand does. Each sample is rendered at 320x320
with the weak-perspective camera of ``wildhands.hand.camera`` (so rendered pixels, 2D keypoints
and the training projection agree exactly), with skin appearance from
``wildhands.data.appearance`` on a textured background, and random occluders on some samples.

Labels per sample: ``keypoints_2d`` (21, 2) crop pixels, ``keypoints_3d`` = R (P - P_root) in
metres, ``visible`` (inside the image: every such keypoint has an exact label), ``occluded``
(inside the image but hidden, by the hand itself or by an occluder), the parameters
``betas``, ``pose``, ``global_orient`` (axis-angle of R) and the camera ``scale`` (px/m) and
``trans`` (px, the root's pixel), as ``weak_perspective_project`` takes them; ``mask`` is the
whole hand's silhouette, occluded parts included (the paper's H), and ``occluder_mask`` the
pixels occluders cover (the visible hand is ``mask & ~occluder_mask``).

Settings: the profile's ``[synthetic]`` table (``SyntheticSettings``) and its ``seed``.

Every sample draws from ``np.random.default_rng([seed, split, index])``: worker count, shard
size and resuming change nothing. Sets are written as shards (``.npz``, images JPEG-encoded,
masks bit-packed), each written atomically and skipped when already complete, and a
``manifest.json`` written last; ``SyntheticHandDataset`` reads them by memory-mapping.
"""
from __future__ import annotations

import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wildhands.config import TableSettings, setting, table
from wildhands.data.appearance import SkinRegions, background_image, draw_occluders, hand_colors, skin_regions
from wildhands.data.real_pose_sampling import real_pose_labels
from wildhands.data.render import is_closed_outward, projected_face_areas, render, vertex_normals
from wildhands.fileio import atomic_path, write_json
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import CROP_SIZE, frame_in_crop, matrix_to_axis_angle, rotation_about
from wildhands.hand.camera_space import Intrinsics, default_intrinsics
from wildhands.hand.hand_model import HandModel, hand_model_from_config, rest_keypoints
from wildhands.hand.keypoint_model import KeypointModel
from wildhands.paths import OUTPUTS_DIR

FORMAT_VERSION = 2
SPLITS = {"train": 0, "val": 1, "test": 2}
JPEG_QUALITY = 92
SHADING = ("smooth", "flat")
# A keypoint's surface patch: the rest-mesh faces with a vertex within this distance beyond its nearest vertex.
PATCH_MARGIN_M = 0.006
# A keypoint is hidden when less than this fraction of its patch's camera-facing projected area shows.
SHOWN_FRACTION = 0.5
# [synthetic] settings only the label-only sampled hands read: the rendered set does not depend on them.
SAMPLED_ONLY_KEYS = ("real_pose_fraction", "real_view_fraction")


@dataclass(frozen=True)
class SyntheticSettings(TableSettings):
    """The ``[synthetic]`` table: set sizes, the sampling ranges of shape, pose and view, the framing,
    occluders and shading of the rendered set, the real hands of the sampled one, shards and workers
    (units and meanings in the profile)."""
    TABLE = "synthetic"
    num_train: int
    num_val: int
    num_test: int
    image_size: int
    pose_range: float
    shape: str                     # normal | uniform
    shape_clip: float
    shape_range: float
    view_uniform_fraction: float
    view_max_tilt_deg: float
    crop_scale: float
    scale_jitter: float
    centre_jitter_px: float
    occluder_probability: float
    shading: str                   # smooth | flat
    real_pose_fraction: float      # sampled hands only (SAMPLED_ONLY_KEYS)
    real_view_fraction: float
    shard_size: int
    workers: int


def synthetic_root(config: dict) -> Path:
    """Where a profile's synthetic set lives: outputs/data/synthetic/<profile>."""
    return OUTPUTS_DIR / "data" / "synthetic" / str(setting(config, "", "profile"))


def anatomical_frame(hand_model: HandModel) -> np.ndarray:
    """(3, 3) rows: along the hand (wrist to middle MCP), the back-of-hand normal, across the palm
    (towards the pinky), in the hand model's rest frame."""
    k = rest_keypoints(hand_model).detach().cpu().double().numpy()
    along = k[9] - k[0]
    across = k[17] - k[5]
    back = np.cross(across, along)  # for a right hand, points out of the back of the hand
    along /= np.linalg.norm(along)
    back -= (back @ along) * along
    back /= np.linalg.norm(back)
    return np.stack([along, back, np.cross(along, back)])


@dataclass(frozen=True)
class HandAssets:
    """What rendering a hand model needs beyond its forward pass, computed once per model."""
    frame: np.ndarray              # anatomical_frame
    regions: SkinRegions           # skin regions of the rest mesh
    patches: tuple                 # per keypoint, the face ids of its surface patch
    cull_backfaces: bool           # closed, outward mesh (the open hand model; MANO is open at the wrist)

    @classmethod
    def of(cls, hand_model: HandModel) -> "HandAssets":
        vertices = hand_model.mano.v_template.detach().cpu().double().numpy()
        keypoints = rest_keypoints(hand_model).detach().cpu().double().numpy()
        frame = anatomical_frame(hand_model)
        distance = np.linalg.norm(keypoints[:, None] - vertices[None], axis=-1)
        patches = tuple(np.flatnonzero((d <= d.min() + PATCH_MARGIN_M)[hand_model.faces].any(1)) for d in distance)
        return cls(frame, skin_regions(vertices, hand_model.faces, keypoints, frame), patches,
                   is_closed_outward(vertices, hand_model.faces))


def random_rotation(rng) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def sample_view(rng, frame: np.ndarray, uniform_fraction: float = 0.5, max_tilt_deg: float = 60.0) -> np.ndarray:
    """Camera rotation R (model frame -> camera frame: x right, y down, z away from the camera).

    A ``uniform_fraction`` of the samples are uniform over all rotations (side and end-on views,
    fingers towards or away from the camera); the others show the palm or the back of the hand
    with its normal within ``max_tilt_deg`` of the camera axis (the commonest views in
    photographs). The in-plane rotation is uniform over the full circle.
    """
    if rng.random() < uniform_fraction:
        return random_rotation(rng)
    along, back, _ = frame
    facing = back if rng.random() < 0.5 else -back        # show the back or the palm
    # Canonical view: ``facing`` points at the camera (camera -z), fingers up (camera -y).
    r_y, r_z = -along, -facing
    canonical = np.stack([np.cross(r_y, r_z), r_y, r_z])
    tilt_axis = rng.normal(size=3)
    tilt_axis[2] = 0.0
    tilt = rotation_about(tilt_axis / np.linalg.norm(tilt_axis), np.deg2rad(rng.uniform(0, max_tilt_deg)))
    spin = rotation_about([0.0, 0.0, 1.0], rng.uniform(-np.pi, np.pi))
    rotation = spin @ tilt @ canonical
    u, _, vt = np.linalg.svd(rotation)
    return u @ vt


@dataclass
class SampleParams:
    betas: np.ndarray
    pose: np.ndarray
    rotation: np.ndarray


def sample_parameters(rng, settings: SyntheticSettings, frame: np.ndarray, num_betas: int,
                      num_pose: int) -> SampleParams:
    """Hand and view parameters of one sample, from the ``[synthetic]`` ranges of ``settings``."""
    if settings.shape == "uniform":
        r = settings.shape_range
        betas = rng.uniform(-r, r, num_betas)
    elif settings.shape == "normal":
        betas = np.clip(rng.standard_normal(num_betas), -settings.shape_clip, settings.shape_clip)
    else:
        raise ValueError(f"synthetic.shape: expected 'normal' or 'uniform', got {settings.shape!r}")
    r = settings.pose_range
    pose = rng.uniform(-r, r, num_pose)
    rotation = sample_view(rng, frame, settings.view_uniform_fraction, settings.view_max_tilt_deg)
    return SampleParams(betas, pose, rotation)


def place_in_crop(points_cam: np.ndarray, rng, size: int, crop_scale: float, jitter: float = 0.1,
                  centre_jitter_px: float = 8.0):
    """Scale (px/m) and translation (px, the root's pixel) so the keypoints' tightest square box is
    ``size / crop_scale`` wide (times 1 +- ``jitter``, uniform) and centred (+- ``centre_jitter_px``,
    standard deviation per axis), as a ``crop_scale`` l crop around a real hand (``camera.frame_in_crop``)."""
    zoom = rng.uniform(1 - jitter, 1 + jitter)
    return frame_in_crop(points_cam, size, crop_scale, zoom, rng.normal(0, centre_jitter_px, 2))


def _in_image(points_2d: np.ndarray, width: int, height: int) -> np.ndarray:
    """Points within the image's pixels (pixel centres 0..W-1, 0..H-1)."""
    x, y = points_2d[..., 0], points_2d[..., 1]
    return (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)


def hidden_keypoints(keypoints_2d, patches, vertices_2d, faces, face_id, occluder_mask=None) -> np.ndarray:
    """(21,) bool: keypoints inside the image but hidden, by the hand itself or by an occluder.

    Keypoints lie inside the hand, so each is judged by its surface patch (``HandAssets``): it
    is hidden by the hand when the rendering (``face_id``) shows less than half of the projected
    area of the patch's faces that are turned towards the camera and inside the image, or when
    none is (a fingertip pointing away), and hidden by an occluder when one covers its pixel.
    """
    height, width = face_id.shape
    keypoints_2d, vertices_2d = np.asarray(keypoints_2d, np.float64), np.asarray(vertices_2d, np.float64)
    inside = _in_image(keypoints_2d, width, height)
    area = np.clip(projected_face_areas(vertices_2d, faces), 0, None) * _in_image(vertices_2d[faces].mean(1),
                                                                                     width, height)
    shown = np.bincount(face_id[face_id >= 0], minlength=len(faces)) * (area > 0)
    hidden = np.array([area[p].sum() == 0 or shown[p].sum() < SHOWN_FRACTION * area[p].sum() for p in patches])
    if occluder_mask is not None:
        pixel = np.clip(np.rint(keypoints_2d).astype(np.int64), 0, [width - 1, height - 1])
        hidden |= occluder_mask[pixel[:, 1], pixel[:, 0]] > 0
    return hidden & inside


def _posed_hand(hand_model: HandModel, settings: SyntheticSettings, frame: np.ndarray, rng, size: int):
    """One sample's parameters, mesh and keypoints in the camera frame (root at the origin, metres),
    and the crop camera (scale px/m, trans px) that frames it."""
    p = sample_parameters(rng, settings, frame, hand_model.num_betas, hand_model.num_pca_comps)
    # One hand per call: batched float32 sums depend on the batch, and samples must not.
    with torch.no_grad():
        out = hand_model(betas=torch.as_tensor(p.betas[None], dtype=hand_model.dtype),
                         pose=torch.as_tensor(p.pose[None], dtype=hand_model.dtype))
    verts = out.vertices[0].double().numpy()
    keys = out.keypoints[0].double().numpy()
    root = keys[kp.ROOT]
    verts_cam = (verts - root) @ p.rotation.T
    keys_cam = (keys - root) @ p.rotation.T
    scale, trans = _placed(keys_cam, rng, settings, size)
    return p, verts, verts_cam, keys_cam, scale, trans


def _placed(keys_cam: np.ndarray, rng, settings: SyntheticSettings, size: int):
    """``place_in_crop`` with the ``[synthetic]`` framing settings."""
    return place_in_crop(keys_cam, rng, size, settings.crop_scale, settings.scale_jitter, settings.centre_jitter_px)


def _labels(p: SampleParams, keys_2d, keys_cam, scale, trans, visible, global_orient=None) -> dict:
    if global_orient is None:
        global_orient = matrix_to_axis_angle(torch.as_tensor(p.rotation)).numpy()
    return {"keypoints_2d": keys_2d.astype(np.float32), "keypoints_3d": keys_cam.astype(np.float32),
            "visible": visible.astype(np.float32), "betas": p.betas.astype(np.float32),
            "pose": p.pose.astype(np.float32),
            "global_orient": np.asarray(global_orient, np.float32),
            "scale": np.array([scale], np.float32), "trans": trans.astype(np.float32)}


class SampledHands(torch.utils.data.Dataset):
    """Label-only synthetic samples drawn on the fly: no image, no mask, a fresh hand per index.

    The same parameter and framing distribution as the rendered set, without rendering, for
    the 2D input variant, which sees only keypoints: its pretraining can draw as many distinct
    hands as it takes steps instead of revisiting a few thousand. Sample ``index`` draws from
    ``default_rng([seed, 3, index])`` (3: apart from the train/val/test splits); ``length`` is
    nominal (a training run asks for steps x batch size indices).

    A ``[synthetic] real_pose_fraction`` of the hands are real captured ones instead
    (``real_pose_sampling``: DexYCB's training subjects, their fit in the network's pose space as
    labels), seen from their captured view for a ``real_view_fraction`` of them, else from the
    view drawn as for the others. At 0 no sample changes.
    """

    def __init__(self, hand_model: HandModel, config: dict, length: int = 10**9, real_poses_path=None):
        self.hand_model, self.length = hand_model, int(length)
        self.settings = SyntheticSettings.from_config(config)
        self.seed = int(setting(config, "", "seed"))
        self.size = self.settings.image_size
        self.frame = anatomical_frame(hand_model)
        self._keypoint_model = None
        self.real_pose_fraction = self.settings.real_pose_fraction
        self.real_view_fraction = self.settings.real_view_fraction
        for name in ("real_pose_fraction", "real_view_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"synthetic.{name}: expected a fraction in [0, 1], got {getattr(self, name)!r}")
        self.real_poses = None
        if self.real_pose_fraction > 0:
            # Fits of another file than the default (a test's) are not cached.
            self.real_poses = real_pose_labels(hand_model, real_poses_path, cache=real_poses_path is None)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices) -> list[dict]:
        """The samples ``indices`` (what a DataLoader asks for a batch at once): one float64 pass of
        the keypoint-only model for all of them (a sample does not depend on its batch, to float32
        precision), the rest per sample from its own generator."""
        indices = [int(i) for i in indices]
        for index in indices:
            if not 0 <= index < self.length:
                raise IndexError(f"index {index} outside the {self.length} sampled hands")
        if self._keypoint_model is None:
            self._keypoint_model = KeypointModel(self.hand_model)
        model = self._keypoint_model
        rngs = [np.random.default_rng([self.seed, len(SPLITS), index]) for index in indices]
        params = [sample_parameters(rng, self.settings, self.frame, self.hand_model.num_betas,
                                    self.hand_model.num_pca_comps)
                  for rng in rngs]
        real = {}   # position in the batch -> a real hand's keypoints in the camera frame
        for i, rng in enumerate(rngs):
            if self.real_poses is not None and rng.random() < self.real_pose_fraction:
                _, betas, pose, rotation, real[i] = self.real_poses.draw(rng, params[i].rotation,
                                                                         self.real_view_fraction)
                params[i] = SampleParams(betas, pose, rotation)
        with torch.no_grad():
            keys = model(torch.as_tensor(np.stack([p.betas for p in params]), dtype=torch.float64),
                         torch.as_tensor(np.stack([p.pose for p in params]), dtype=torch.float64)).numpy()
            orients = matrix_to_axis_angle(torch.as_tensor(np.stack([p.rotation for p in params]))).numpy()
        samples = []
        for i, (index, rng, p, k, orient) in enumerate(zip(indices, rngs, params, keys, orients)):
            keys_cam = real[i] if i in real else (k - k[kp.ROOT]) @ p.rotation.T
            scale, trans = _placed(keys_cam, rng, self.settings, self.size)
            keys_2d = scale * keys_cam[:, :2] + trans
            visible = _in_image(keys_2d, self.size, self.size)
            samples.append({**_labels(p, keys_2d, keys_cam, scale, trans, visible, orient),
                            "has_3d": np.float32(1), "has_params": np.float32(1), "has_mask": np.float32(0),
                            "index": index, "source": "real_poses" if i in real else "sampled"})
        return samples


def render_samples(hand_model: HandModel, config: dict, split: str, indices, assets: HandAssets | None = None
                   ) -> list[dict]:
    """Render the samples ``indices`` of ``split``: dicts with the uint8 ``image``, ``mask`` and
    ``occluder_mask``, the labels and parameters of the module docstring, and ``index``."""
    import cv2

    settings = SyntheticSettings.from_config(config)
    size = settings.image_size
    seed = int(setting(config, "", "seed"))
    shading = settings.shading
    if shading not in SHADING:
        raise ValueError(f"synthetic.shading: expected one of {', '.join(SHADING)}, got {shading!r}")
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    assets = HandAssets.of(hand_model) if assets is None else assets
    faces = hand_model.faces
    samples = []
    for index in indices:
        rng = np.random.default_rng([seed, SPLITS[split], int(index)])
        p, verts, verts_cam, keys_cam, scale, trans = _posed_hand(hand_model, settings, assets.frame, rng, size)
        verts_2d = scale * verts_cam[:, :2] + trans
        keys_2d = scale * keys_cam[:, :2] + trans
        normals_cam = vertex_normals(verts, faces) @ p.rotation.T
        colors = hand_colors(rng, verts, normals_cam, assets.regions)
        background = background_image(rng, size)
        hand = render(verts_2d, verts_cam[:, 2], faces, colors, size, size, flat=shading == "flat",
                      cull_backfaces=assets.cull_backfaces)
        mask = hand.mask
        rgb = (background + 0.5).astype(np.uint8)
        rgb[mask > 0] = (hand.color[mask > 0] * 255 + 0.5).astype(np.uint8)
        occluder_mask = np.zeros_like(mask)
        if rng.random() < settings.occluder_probability:
            rgb, occluder_mask = draw_occluders(rng, rgb, keys_2d)
        rgb = cv2.GaussianBlur(rgb, (3, 3), rng.uniform(0.3, 0.9))  # soften aliasing like a camera
        visible = _in_image(keys_2d, size, size)
        occluded = hidden_keypoints(keys_2d, assets.patches, verts_2d, faces, hand.face_id, occluder_mask)
        samples.append({
            "index": int(index), "image": rgb, "mask": mask, "occluder_mask": occluder_mask,
            "occluded": occluded.astype(np.float32), **_labels(p, keys_2d, keys_cam, scale, trans, visible),
        })
    return samples


# ----------------------------------------------------------------------------- shards

ARRAY_KEYS = ("keypoints_2d", "keypoints_3d", "visible", "occluded", "betas", "pose", "global_orient", "scale",
              "trans")
MASK_KEYS = {"mask": "masks", "occluder_mask": "occluder_masks"}  # sample key: shard array (bit-packed)


def _encode_shard(samples: list[dict], meta: dict) -> dict:
    import cv2

    jpegs = [cv2.imencode(".jpg", s["image"][..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
             for s in samples]
    offsets = np.cumsum([0] + [len(j) for j in jpegs])
    arrays = {k: np.stack([s[k] for s in samples]) for k in ARRAY_KEYS}
    return {"jpeg": np.frombuffer(b"".join(jpegs), np.uint8), "jpeg_offsets": offsets,
            **{name: np.packbits(np.stack([s[key] for s in samples]).astype(bool), axis=-1)
               for key, name in MASK_KEYS.items()},
            "index": np.array([s["index"] for s in samples]), "meta": np.array(json.dumps(meta)), **arrays}


def _shard_name(start: int, count: int) -> str:
    return f"shard_{start:07d}_{count:05d}.npz"


def _shard_complete(path: Path, meta: dict) -> bool:
    try:
        with np.load(path) as data:
            return json.loads(str(data["meta"])) == meta
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return False


_WORKER = {}


def _model_spec(hand_model: HandModel) -> dict:
    """What rebuilds ``hand_model`` in a spawned worker: its file and settings, a few bytes to send
    (a pickled model is megabytes, and a worker that dies before reading them hangs the parent)."""
    return {"path": str(hand_model.path), "num_pca_comps": hand_model.num_pca_comps,
            "num_betas": hand_model.num_betas, "flat_hand_mean": bool(hand_model.flat_hand_mean),
            "fingertips": [int(i) for i in hand_model.fingertip_ids], "dtype": hand_model.dtype,
            "hash": hand_model.hash}


def _init_worker(config: dict, hand_model: HandModel | dict, single_thread: bool = True) -> None:
    if single_thread:  # one core per pool worker
        torch.set_num_threads(1)
    if isinstance(hand_model, dict):
        spec = dict(hand_model)
        expected = spec.pop("hash")
        hand_model = HandModel(**spec)
        if hand_model.hash != expected:
            raise RuntimeError(f"hand model {spec['path']} changed while the synthetic set was being generated")
    _WORKER.update(config=config, model=hand_model, assets=HandAssets.of(hand_model))


def _write_shard(job) -> int:
    split, start, count, directory, meta = job
    samples = render_samples(_WORKER["model"], _WORKER["config"], split, range(start, start + count),
                             _WORKER["assets"])
    with atomic_path(Path(directory) / _shard_name(start, count)) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **_encode_shard(samples, meta))
    return count


def generate_synthetic_set(config: dict, root=None, split: str = "train", hand_model=None,
                           progress: bool = True) -> Path:
    """Generate (or complete) one split of the synthetic set; returns its manifest path."""
    from tqdm.auto import tqdm

    if split not in SPLITS:
        raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    settings = SyntheticSettings.from_config(config)
    count = getattr(settings, f"num_{split}")
    shard_size = max(1, settings.shard_size)
    directory = Path(root or synthetic_root(config)) / split
    directory.mkdir(parents=True, exist_ok=True)
    hand_model = hand_model_from_config(config) if hand_model is None else hand_model
    if not hand_model.is_right:
        raise ValueError(f"hand_model: {hand_model.path} is a left hand; the synthetic set shows right hands "
                         "(left hands are mirrored right ones)")
    meta = _set_meta(config, split, hand_model)
    shards = [(s, min(shard_size, count - s)) for s in range(0, count, shard_size)]
    todo = [(split, s, c, str(directory), meta) for s, c in shards
            if not _shard_complete(directory / _shard_name(s, c), meta)]
    if todo:  # the set is incomplete until the manifest is written again
        (directory / "manifest.json").unlink(missing_ok=True)
    bar = tqdm(total=count, initial=count - sum(job[2] for job in todo), desc=f"synthetic {split}", unit="sample",
               disable=not progress)
    _write_shards(todo, config, hand_model, max(1, settings.workers), bar)
    bar.close()
    manifest = {**meta, "count": count, "shard_size": shard_size, "profile": setting(config, "", "profile"),
                "shards": [{"file": _shard_name(s, c), "start": s, "count": c} for s, c in shards]}
    return _write_manifest(directory, manifest)


def _set_meta(config: dict, split: str, hand_model: HandModel) -> dict:
    """Everything that decides a sample's content: a shard with other metadata is regenerated. Its
    ``synthetic`` entry is the ``[synthetic]`` table as the profile gives it, less what decides no sample."""
    section = table(config, "synthetic")
    return {"format": FORMAT_VERSION, "seed": int(setting(config, "", "seed")), "split": split,
            "hand_model": hand_model.hash, "image_size": SyntheticSettings.from_config(config).image_size,
            "hand_model_settings": {"num_pca_comps": hand_model.num_pca_comps, "num_betas": hand_model.num_betas,
                                    "flat_hand_mean": bool(hand_model.flat_hand_mean),
                                    "fingertip_ids": [int(i) for i in hand_model.fingertip_ids]},
            "synthetic": {k: v for k, v in section.items()
                          if k not in ("workers", "shard_size", *SAMPLED_ONLY_KEYS) and not k.startswith("num_")}}


def _write_shards(todo: list, config: dict, hand_model: HandModel, workers: int, bar) -> None:
    """Render and write the shards ``todo``: here, or in ``workers`` spawned processes."""
    if workers == 1 or len(todo) <= 1:
        _init_worker(config, hand_model, single_thread=False)
        for job in todo:
            bar.update(_write_shard(job))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # An executor, not mp.Pool: a worker that dies (out of memory, killed) raises instead of hanging.
    try:
        with ProcessPoolExecutor(min(workers, len(todo)), mp.get_context("spawn"), _init_worker,
                                 (config, _model_spec(hand_model))) as pool:
            for done in as_completed([pool.submit(_write_shard, job) for job in todo]):
                bar.update(done.result())
    except BrokenProcessPool as err:
        raise RuntimeError(
            f"a synthetic-set worker process died ({err}). Workers are spawned: a script must guard its "
            "entry point with `if __name__ == '__main__':`; or set synthetic.workers = 1. Complete shards "
            "are kept; rerun to finish the set.") from err


def _write_manifest(directory: Path, manifest: dict) -> Path:
    """``manifest.json`` (written last: a set with one is complete); shards it does not list (of
    other settings, another shard size) are deleted."""
    path = write_json(directory / "manifest.json", manifest)
    listed = {entry["file"] for entry in manifest["shards"]}
    for stale in directory.glob("shard_*.npz"):
        if stale.name not in listed:
            stale.unlink()
    return path


def _map_npz_member(path: Path, name: str) -> np.ndarray:
    """Memory-map one array of an uncompressed ``.npz`` (as ``np.savez`` writes), reading nothing else."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{path}: member {name!r} is compressed; shards must be written with np.savez")
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        name_length, extra_length = struct.unpack("<HH", f.read(30)[26:30])  # zip local file header
        f.seek(info.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
        offset = f.tell()
    return np.memmap(path, dtype, "r", offset, shape, "F" if fortran_order else "C")


class SyntheticHandDataset(torch.utils.data.Dataset):
    """Samples of a generated split in the project's training sample format, plus ``occluded``
    (21,) and ``occluder_mask`` (S, S) (see the module docstring).

    Shards are opened lazily: a shard's labels are read on first use and its JPEG images and
    packed masks memory-mapped, so random access reads one sample's bytes, whatever the order.
    """

    def __init__(self, root, split: str = "train"):
        self.directory = Path(root) / split
        manifest_path = self.directory / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(f"no synthetic {split} set at {self.directory} (expected manifest.json)")
        self.manifest = json.loads(manifest_path.read_text())
        if self.manifest.get("format") != FORMAT_VERSION:
            raise ValueError(f"{manifest_path}: format {self.manifest.get('format')}, this code reads "
                             f"{FORMAT_VERSION}; regenerate the set")
        self.starts = np.array([s["start"] for s in self.manifest["shards"]])
        self._shards: dict[int, dict] = {}

    def __len__(self) -> int:
        return int(self.manifest["count"])

    def __getstate__(self) -> dict:  # DataLoader workers reopen shards themselves
        return {**self.__dict__, "_shards": {}}

    def _shard(self, k: int) -> dict:
        if k not in self._shards:
            path = self.directory / self.manifest["shards"][k]["file"]
            if not path.is_file():
                raise FileNotFoundError(f"{path}: shard listed in the manifest is missing; rerun "
                                        "generate_synthetic_set to complete the set")
            with np.load(path) as data:
                shard = {key: data[key] for key in ARRAY_KEYS + ("index", "jpeg_offsets")}
            shard.update({name: _map_npz_member(path, name) for name in ("jpeg",) + tuple(MASK_KEYS.values())})
            self._shards[k] = shard
        return self._shards[k]

    def __getitem__(self, index: int) -> dict:
        import cv2

        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} outside the {len(self)} samples of {self.directory}")
        k = int(np.searchsorted(self.starts, index, side="right") - 1)
        data = self._shard(k)
        i = index - int(self.starts[k])
        lo, hi = data["jpeg_offsets"][i], data["jpeg_offsets"][i + 1]
        image = cv2.imdecode(np.asarray(data["jpeg"][lo:hi]), cv2.IMREAD_COLOR)[..., ::-1].copy()
        size = image.shape[0]
        sample = {key: data[key][i].astype(np.float32) for key in ARRAY_KEYS}
        for key, name in MASK_KEYS.items():
            sample[key] = np.unpackbits(np.asarray(data[name][i]), axis=-1, count=size).astype(np.uint8)
        sample.update(image=image, has_3d=np.float32(1), has_mask=np.float32(1),
                      has_params=np.float32(1), is_left=False, index=int(data["index"][i]), source="synthetic")
        return sample


# ----------------------------------------------------------------------------- scenes for predict

def render_scene(hand_model: HandModel, config: dict, index: int, height: int = 480, width: int = 640,
                 assets: HandAssets | None = None) -> tuple[np.ndarray, list[dict]]:
    """A photograph-like test scene: 1-2 synthetic hands (some left, by mirroring) pasted at random
    places and sizes on a background. Returns the RGB image and, per hand, its 21 keypoints in
    image pixels and its side."""
    import cv2

    rng = np.random.default_rng([int(setting(config, "", "seed")), 7, int(index)])
    side = max(height, width)
    image = cv2.resize(background_image(rng, CROP_SIZE), (side, side))[:height, :width].astype(np.uint8)
    hands = []
    for n in range(int(rng.integers(1, 3))):
        sample = render_samples(hand_model, config, "test", [10_000 + 2 * index + n], assets)[0]
        crop, mask, keys = sample["image"], sample["mask"], sample["keypoints_2d"].astype(np.float64)
        is_left = bool(rng.random() < 0.4)
        if is_left:  # a mirrored right hand is a left hand
            crop, mask = crop[:, ::-1], mask[:, ::-1]
            keys[:, 0] = crop.shape[1] - 1 - keys[:, 0]
        size = int(rng.uniform(0.35, 0.7) * min(height, width) * 1.6)
        zoom = size / crop.shape[0]
        crop = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(np.ascontiguousarray(mask), (size, size), interpolation=cv2.INTER_NEAREST)
        x0 = int(rng.integers(-size // 4, max(width - 3 * size // 4, 1)))
        y0 = int(rng.integers(-size // 4, max(height - 3 * size // 4, 1)))
        if n == 1 and hands:  # keep the second hand apart from the first
            x0 = int((hands[0]["keypoints_2d"][:, 0].mean() + width / 2) % max(width - size // 2, 1)) - size // 4
        ys, xs = np.nonzero(mask)
        ty, tx = ys + y0, xs + x0
        inside = (ty >= 0) & (ty < height) & (tx >= 0) & (tx < width)
        image[ty[inside], tx[inside]] = crop[ys[inside], xs[inside]]
        hands.append({"keypoints_2d": (keys + 0.5) * zoom - 0.5 + [x0, y0], "handedness": "left" if is_left else "right"})
    return image, hands


def render_photographed(hand_model: HandModel, config: dict, index: int, angle_deg: float, depth_m: float,
                        width: int = 1280, height: int = 960, focal_px: float | None = None,
                        assets: HandAssets | None = None) -> dict:
    """A hand photographed by a pinhole camera, where ``render_samples`` draws crops by the
    weak-perspective one: the test split's sample ``index`` (pose, shape, view, skin, background),
    its keypoints' centroid ``depth_m`` metres away and ``angle_deg`` off the optical axis in a random
    direction, in a ``width`` x ``height`` photo of focal length ``focal_px`` (None: the default lens,
    ``camera_space.default_intrinsics``). Off the axis the camera sees the hand along the ray to it.
    Returns ``image``, the hand's ``mask``, ``keypoints_2d`` (21, 2) px, ``keypoints_3d`` (21, 3) camera frame, metres,
    ``intrinsics`` and ``inside`` (whether every keypoint is in the photo)."""
    import cv2

    if not (depth_m > 0 and 0 <= angle_deg < 80):
        raise ValueError(f"photographed hand: expected depth_m > 0 and angle_deg in [0, 80), got {depth_m}, "
                         f"{angle_deg}")
    settings = SyntheticSettings.from_config(config)
    assets = HandAssets.of(hand_model) if assets is None else assets
    intrinsics = default_intrinsics(width, height) if focal_px is None else \
        Intrinsics.centred(float(focal_px), width, height, "flag", f"focal {focal_px:g} px")
    rng = np.random.default_rng([int(setting(config, "", "seed")), SPLITS["test"], int(index), 29])
    p, verts, verts_cam, keys_cam, _, _ = _posed_hand(hand_model, settings, assets.frame, rng, CROP_SIZE)
    turn = rng.uniform(0, 2 * np.pi)
    ray = np.array([np.tan(np.radians(angle_deg)) * np.cos(turn), np.tan(np.radians(angle_deg)) * np.sin(turn), 1.0])
    shift = ray * depth_m - keys_cam.mean(0)
    verts_cam, keys_cam = verts_cam + shift, keys_cam + shift
    centre = np.array([intrinsics.cx, intrinsics.cy])
    verts_2d = centre + intrinsics.focal * verts_cam[:, :2] / verts_cam[:, 2:]
    keys_2d = centre + intrinsics.focal * keys_cam[:, :2] / keys_cam[:, 2:]
    colors = hand_colors(rng, verts, vertex_normals(verts, hand_model.faces) @ p.rotation.T, assets.regions)
    backdrop = cv2.resize(background_image(rng, CROP_SIZE), (max(width, height),) * 2)[:height, :width]
    hand = render(verts_2d, verts_cam[:, 2], hand_model.faces, colors, width, height,
                  flat=settings.shading == "flat", cull_backfaces=assets.cull_backfaces)
    image = (backdrop + 0.5).astype(np.uint8)
    image[hand.mask > 0] = (hand.color[hand.mask > 0] * 255 + 0.5).astype(np.uint8)
    image = cv2.GaussianBlur(image, (3, 3), rng.uniform(0.3, 0.9))
    return {"image": image, "mask": hand.mask, "keypoints_2d": keys_2d, "keypoints_3d": keys_cam,
            "intrinsics": intrinsics, "inside": bool(_in_image(keys_2d, width, height).all())}


def write_scenes(directory, count: int, config: dict, hand_model: HandModel | None = None) -> Path:
    """``count`` scenes as PNG files plus ``keypoints.json`` ({file name: [hands]}, the format of
    ``predict --keypoints``) in ``directory``; returns the directory."""
    import cv2

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    hand_model = hand_model_from_config(config) if hand_model is None else hand_model
    assets = HandAssets.of(hand_model)
    labels = {}
    for i in range(count):
        image, hands = render_scene(hand_model, config, i, assets=assets)
        name = f"scene_{i:03d}.png"
        with atomic_path(directory / name) as tmp:
            tmp.write_bytes(cv2.imencode(".png", image[..., ::-1])[1].tobytes())
        labels[name] = [{"keypoints_2d": h["keypoints_2d"].round(2).tolist(), "handedness": h["handedness"]}
                        for h in hands]
    write_json(directory / "keypoints.json", labels)
    return directory
