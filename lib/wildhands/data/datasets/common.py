"""What every real-data loader shares: the ``HandRecord``, keypoint-order conversion, projection
and the ``DatasetNotFound`` error.

A loader turns a data set's published files into ``HandRecord`` objects, one per hand in one
image, in the project's conventions: keypoints in the OpenPose order of
``wildhands.hand.keypoints``, image pixels with pixel centres at integer coordinates and y down,
metres in the camera frame, and the hand's side recorded in ``is_left`` (left hands are not
mirrored here; the crop does it). A keypoint the set does not give is NaN in
``keypoints_2d`` / ``keypoints_3d`` and 0 in ``visible``: such rows must never be used
unmasked.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from wildhands.hand import keypoints as kp

MM = 1e-3                     # metres per millimetre
ROOTS = ("wrist", "palm")     # what keypoint 0 of a record is
_LISTED_MISSING = 8           # missing files named in a DatasetNotFound message


class DatasetNotFound(FileNotFoundError):
    """A data set that is missing or incomplete on disk; the message says what was expected where."""

    def __init__(self, dataset: str, root, expected, missing_count: int | None = None, hint: str = ""):
        self.dataset, self.root = dataset, Path(root) if root else None
        self.expected = [str(p) for p in expected]
        count = len(self.expected) if missing_count is None else missing_count
        shown = ", ".join(self.expected[:_LISTED_MISSING])
        more = f" and {count - _LISTED_MISSING} more" if count > _LISTED_MISSING else ""
        where = f"under {self.root}" if self.root else "(no path given)"
        parts = [f"{dataset}: data set not found or incomplete {where}: expected {shown}{more}", hint,
                 "See docs/datasets.md for where to get it and how to unpack it."]
        super().__init__(". ".join(p for p in parts if p))


@dataclass(frozen=True, eq=False)
class HandRecord:
    """One hand in one image, in the project's conventions.

    ``keypoints_2d`` (21, 2) image pixels and ``keypoints_3d`` (21, 3) metres in the camera
    frame (None for 2D-only sets), both in the OpenPose order; ``visible`` (21,) 1 where the
    2D keypoint is labelled and visible; ``scored`` (21,) 1 where the keypoint counts in
    evaluation (for fingertip-only sets, the labelled tips); ``root`` 'wrist', or 'palm' where
    keypoint 0 is the palm centre (STB); ``intrinsics`` (3, 3) pixels, or None.
    """
    image_path: Path
    keypoints_2d: np.ndarray
    visible: np.ndarray
    keypoints_3d: np.ndarray | None
    is_left: bool
    intrinsics: np.ndarray | None
    root: str
    scored: np.ndarray
    dataset: str
    split: str
    id: str

    def __post_init__(self):
        name = f"{self.dataset} record {self.id!r}"
        if self.root not in ROOTS:
            raise ValueError(f"{name}: root must be one of {ROOTS}, got {self.root!r}")
        checked = {
            "image_path": Path(self.image_path),
            "keypoints_2d": _array(self.keypoints_2d, (kp.NUM_KEYPOINTS, 2), f"{name}: keypoints_2d"),
            "visible": _flags(self.visible, f"{name}: visible"),
            "scored": _flags(self.scored, f"{name}: scored"),
            "keypoints_3d": None if self.keypoints_3d is None else
            _array(self.keypoints_3d, (kp.NUM_KEYPOINTS, 3), f"{name}: keypoints_3d"),
            "intrinsics": None if self.intrinsics is None else _array(self.intrinsics, (3, 3), f"{name}: intrinsics"),
            "is_left": bool(self.is_left),
        }
        for field, value in checked.items():
            object.__setattr__(self, field, value)  # the dataclass is frozen
        if (self.visible.astype(bool) & ~np.isfinite(self.keypoints_2d).all(axis=1)).any():
            raise ValueError(f"{name}: a visible keypoint has no finite 2D position")

    @property
    def has_3d(self) -> bool:
        """True when all 21 keypoints have finite 3D positions."""
        return self.keypoints_3d is not None and bool(np.isfinite(self.keypoints_3d).all())


def _array(values, shape, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
    arr.setflags(write=False)
    return arr


def _flags(values, name: str) -> np.ndarray:
    arr = _array(values, (kp.NUM_KEYPOINTS,), name)
    if not np.isin(arr, (0.0, 1.0)).all():
        raise ValueError(f"{name}: expected 0/1 flags")
    return arr


# ----------------------------------------------------------------------------- keypoint orders

def keypoint_order(source_names) -> np.ndarray:
    """Index array ``order`` with ``ours = theirs[order]``, from a set's keypoint names.

    ``source_names`` lists the set's keypoints, in its order, with the names of
    ``keypoints.KEYPOINT_NAMES``; a set that labels fewer keypoints names only those, and the
    keypoints it lacks get index -1 (``to_openpose`` fills them with NaN).
    """
    source_names = list(source_names)
    unknown = sorted(set(source_names) - set(kp.KEYPOINT_NAMES))
    if unknown or len(set(source_names)) != len(source_names):
        raise ValueError(f"keypoint names: unknown {unknown} or repeated in {source_names}")
    return np.array([source_names.index(n) if n in source_names else -1 for n in kp.KEYPOINT_NAMES])


def to_openpose(points, order: np.ndarray) -> np.ndarray:
    """(..., N, d) points of a set, reordered by ``order`` (``keypoint_order``) to (..., 21, d)."""
    points = np.asarray(points, dtype=np.float64)
    out = points[..., np.maximum(order, 0), :].copy()
    out[..., order < 0, :] = np.nan
    return out


# ----------------------------------------------------------------------------- geometry

def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """The 3x3 pinhole matrix K (pixels)."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def project(points_3d, K) -> np.ndarray:
    """(..., 3) camera-frame points -> (..., 2) pixels through ``K`` (..., 3, 3), broadcast; no distortion.

    Points at or behind the camera (z <= 0) and non-finite points give NaN.
    """
    points = np.asarray(points_3d, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    z = points[..., 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.matmul(K, points[..., None])[..., :2, 0] / z
    return np.where(z > 0, uv, np.nan)


def inside_image(points_2d, width: int, height: int) -> np.ndarray:
    """(...,) True where a pixel position lies within the image (pixel centres 0..W-1, 0..H-1)."""
    p = np.asarray(points_2d, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return ((p[..., 0] >= -0.5) & (p[..., 0] <= width - 0.5)
                & (p[..., 1] >= -0.5) & (p[..., 1] <= height - 0.5))


# ----------------------------------------------------------------------------- files

def check_root(dataset: str, root, expected) -> Path:
    """``root`` as a Path; DatasetNotFound naming ``expected`` when it is empty or not a folder."""
    if root is None or str(root).strip() == "":
        raise DatasetNotFound(dataset, None, expected, hint="Pass the folder the set was unpacked into")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetNotFound(dataset, root, expected, hint=f"{root} is not a folder")
    return root


def require_files(dataset: str, root: Path, paths, hint: str = "") -> None:
    """DatasetNotFound listing those of ``paths`` (relative to ``root``, or absolute) that are missing."""
    missing = [Path(p) for p in paths if not (root / p).exists()]
    if missing:
        shown = [p.relative_to(root) if p.is_absolute() and p.is_relative_to(root) else p for p in missing]
        raise DatasetNotFound(dataset, root, shown, missing_count=len(missing), hint=hint)


def check_split(dataset: str, split: str, splits) -> str:
    if split not in splits:
        raise ValueError(f"{dataset}: split must be one of {tuple(splits)}, got {split!r}")
    return split


def read_json(path: Path, dataset: str):
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{dataset}: {path} is not valid JSON ({err})") from None


def natural_key(path) -> list:
    """Sort key that orders 'img_2' before 'img_10'."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", Path(path).name)]


def progress(iterable, description: str, total: int | None = None):
    """tqdm over long loops (from a thousand items on)."""
    from tqdm.auto import tqdm

    total = len(iterable) if total is None and hasattr(iterable, "__len__") else total
    return tqdm(iterable, desc=description, total=total, unit="hand", leave=False,
                disable=total is not None and total < 1000)


def read_fingertip_file(path: Path, dims: int, dataset: str) -> np.ndarray:
    """(frames, 5, dims) from a DEXTER+OBJECT / EGODEXTER annotation text file; blanks are NaN.

    One line per frame, five fingertips (thumb, index, middle, ring, little) separated by ';',
    coordinates by ','; a trailing ';' and trailing empty lines are allowed.
    """
    lines = Path(path).read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    out = np.full((len(lines), 5, dims), np.nan)
    for row, line in enumerate(lines):
        for tip, field in enumerate(line.split(";")[:5]):
            if not field.strip():
                continue
            try:
                values = [float(v) for v in field.split(",")]
            except ValueError:
                raise ValueError(f"{dataset}: {path} line {row + 1}: {field.strip()!r} is not {dims} numbers") from None
            if len(values) != dims:
                raise ValueError(f"{dataset}: {path} line {row + 1}: expected {dims} numbers per fingertip, "
                                 f"got {field.strip()!r}")
            out[row, tip] = values
    return out


def fingertip_record(image_path: Path, tips: np.ndarray, K: np.ndarray, image_size, dataset: str, split: str,
                     id: str, is_left: bool) -> HandRecord:
    """A record labelling only the fingertips: ``tips`` (5, 3) metres, colour-camera frame, NaN if absent.

    The tips are scored where labelled and visible where they also project inside the image;
    every other keypoint is NaN and unscored.
    """
    points = np.full((kp.NUM_KEYPOINTS, 3), np.nan)
    points[list(kp.FINGERTIPS)] = tips
    labelled = np.isfinite(points).all(axis=1)
    uv = project(points, K)
    return HandRecord(
        image_path=image_path, keypoints_2d=uv, visible=(labelled & inside_image(uv, *image_size)).astype(float),
        keypoints_3d=points, is_left=is_left, intrinsics=K, root="wrist", scored=labelled.astype(float),
        dataset=dataset, split=split, id=id)


@dataclass(frozen=True)
class FingertipSequences:
    """A fingertip-only set laid out as ``<root>/data/<sequence>/color/*.png`` with one annotation
    line per colour frame, in frame-name order (DEXTER+OBJECT, EGODEXTER).

    ``missing(tips_mm)`` marks the fingertips a line leaves unannotated, ``to_colour_mm`` maps the
    others (millimetres, depth sensor) into the colour camera's frame; frames without any
    annotated fingertip are skipped."""
    name: str
    sequences: tuple
    splits: tuple
    annotation_path: Callable[[str], Path]
    missing: Callable[[np.ndarray], np.ndarray]
    to_colour_mm: Callable[[np.ndarray], np.ndarray]
    colour_k: np.ndarray
    image_size: tuple

    def records(self, root, split: str, is_left: bool) -> list[HandRecord]:
        check_split(self.name, split, self.splits)
        expected = ([self.annotation_path(s) for s in self.sequences]
                    + [Path("data") / s / "color" for s in self.sequences])
        root = check_root(self.name, root, expected)
        require_files(self.name, root, expected)
        return [record for sequence in self.sequences for record in self._sequence(root, sequence, split, is_left)]

    def _sequence(self, root: Path, sequence: str, split: str, is_left: bool) -> list[HandRecord]:
        frames = sorted((root / "data" / sequence / "color").glob("*.png"), key=natural_key)
        tips_mm = read_fingertip_file(root / self.annotation_path(sequence), 3, self.name)
        if not frames:
            raise DatasetNotFound(self.name, root, [Path("data") / sequence / "color" / "*.png"])
        if len(frames) != len(tips_mm):
            raise ValueError(f"{self.name}: {sequence} has {len(frames)} colour frames but "
                             f"{root / self.annotation_path(sequence)} has {len(tips_mm)} lines")
        tips_mm[self.missing(tips_mm)] = np.nan
        tips = self.to_colour_mm(tips_mm) * MM
        return [fingertip_record(path, tips[frame], self.colour_k, self.image_size, self.name, split,
                                 f"{sequence}/{path.stem}", is_left)
                for frame, path in enumerate(frames) if np.isfinite(tips[frame]).all(axis=1).any()]


def flagged_keypoints(points: np.ndarray, where: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(keypoints (21, 2) image pixels, NaN where not visible; visible (21,) 0/1) from 21 rows of
    ``[x, y, flag]`` (flag > 0: visible), the ``key`` entry of the annotation ``where`` names."""
    if points.shape != (kp.NUM_KEYPOINTS, 3):
        raise ValueError(f"{where}: '{key}' must be 21 x [x, y, flag], got shape {points.shape}")
    visible = ((points[:, 2] > 0) & np.isfinite(points[:, :2]).all(axis=1)).astype(float)
    return np.where(visible[:, None] > 0, points[:, :2], np.nan), visible
