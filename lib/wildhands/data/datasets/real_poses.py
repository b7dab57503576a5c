"""Real captured hand poses: DexYCB's 3D hand joints, without images, mirrored to right hands.

DexYCB: Chao et al., "DexYCB: A Benchmark for Capturing Hand Grasping of Objects", CVPR 2021
(dex-ycb.github.io); annotations under CC BY-NC 4.0 (non-commercial, with attribution). The file
is never shipped: users place it at ``../shared/real_poses/dexycb_left_hands.npz`` (next to the
project) or point ``WILDHANDS_REAL_POSES`` (or the ``path`` argument) at it.

On disk, one ``.npz``: ``joints_3d`` (N, 21, 3) float32 metres in the capturing camera's frame
(x right, y down, z away), OpenPose order, all LEFT hands; ``subject`` (N,) ``YYYYMMDD-subject-NN``;
``sequence`` (N,) str; ``frame`` (N,) int. (Its MANO fits need the licensed MANO_LEFT model and
are not read.)

Here, in the project's conventions: right hands (x' = -x, the camera frame mirrored with the
image), joints relative to keypoint 0 (the wrist) in metres, and the wrist's mirrored camera-frame
position kept beside them. Splits by subject (``SPLIT_SUBJECTS``): 'train' (01-08) for anything
that learns or tunes, 'test' (09-10) for reports only, 'all' for both.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildhands.data.datasets.common import DatasetNotFound, check_split
from wildhands.hand import keypoints as kp
from wildhands.paths import SHARED_DIR

NAME = "real_poses"
FILE_NAME = "dexycb_left_hands.npz"
PATH_ENV = "WILDHANDS_REAL_POSES"
CITATION = ("DexYCB: Chao et al., DexYCB: A Benchmark for Capturing Hand Grasping of Objects, CVPR 2021 "
            "(CC BY-NC 4.0)")
# Subject numbers per split: learning and tuning never see the test subjects.
SPLIT_SUBJECTS = {"train": tuple(range(1, 9)), "test": (9, 10)}
SPLITS = (*SPLIT_SUBJECTS, "all")
_SUBJECT = re.compile(r"subject-(\d+)$")


def default_real_poses_path() -> Path:
    """``$WILDHANDS_REAL_POSES`` if set, else ``../shared/real_poses/dexycb_left_hands.npz``."""
    return Path(os.environ.get(PATH_ENV) or SHARED_DIR / "real_poses" / FILE_NAME).expanduser()


@dataclass(frozen=True, eq=False)
class RealPoses:
    """Real right-hand poses of one split, frame by frame, in the project's conventions."""
    joints: np.ndarray     # (N, 21, 3) metres, root-relative (keypoint 0 at the origin), camera axes
    root: np.ndarray       # (N, 3) metres, keypoint 0 in the (mirrored) camera frame
    subject: np.ndarray    # (N,) int, the subject's number (1-10)
    sequence: np.ndarray   # (N,) str, the capture sequence
    frame: np.ndarray      # (N,) int, the frame in its sequence
    split: str
    path: Path

    def __len__(self) -> int:
        return len(self.joints)

    def take(self, index) -> "RealPoses":
        """The frames at ``index`` (an index array, slice or boolean mask), same split."""
        return RealPoses(self.joints[index], self.root[index], self.subject[index], self.sequence[index],
                         self.frame[index], self.split, self.path)

    def every(self, step: int) -> "RealPoses":
        """Every ``step``-th frame (a deterministic subsample spread over all subjects)."""
        if int(step) < 1:
            raise ValueError(f"{NAME}: step must be >= 1, got {step!r}")
        return self.take(slice(None, None, int(step)))

    def subsample(self, limit: int | None) -> "RealPoses":
        """At most ``limit`` frames, evenly spaced (every k-th); all of them when ``limit`` is None."""
        if limit is None or int(limit) >= len(self):
            return self
        if int(limit) < 1:
            raise ValueError(f"{NAME}: limit must be >= 1, got {limit!r}")
        return self.take(np.linspace(0, len(self) - 1, int(limit)).round().astype(int))


def subject_number(name: str) -> int:
    """1-10 from DexYCB's ``YYYYMMDD-subject-NN``."""
    match = _SUBJECT.search(str(name))
    if match is None:
        raise ValueError(f"{NAME}: subject {name!r} is not of the form YYYYMMDD-subject-NN")
    return int(match.group(1))


def load_real_poses(split: str = "train", path=None) -> RealPoses:
    """The real poses of ``split`` ('train': subjects 01-08, 'test': 09-10, 'all'), mirrored to right hands.

    ``path``: the ``.npz`` (default ``default_real_poses_path()``). A missing file raises
    ``DatasetNotFound`` (a FileNotFoundError) naming where it was expected and how to point to it.
    """
    check_split(NAME, split, SPLITS)
    path = Path(path).expanduser() if path is not None else default_real_poses_path()
    if not path.is_file():
        raise DatasetNotFound(NAME, path.parent, [path.name], hint=(
            f"Place DexYCB's left-hand joints ({FILE_NAME}) at {path}, or set {PATH_ENV} to the file"))
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("joints_3d", "subject", "sequence", "frame") if k not in data.files]
            if missing:
                raise ValueError(f"{NAME}: {path} lacks the arrays {', '.join(missing)}")
            joints = np.asarray(data["joints_3d"], np.float64)
            subjects, sequence, frame = data["subject"], data["sequence"].astype(str), data["frame"].astype(np.int64)
    except (OSError, ValueError) as err:
        if str(err).startswith(NAME):
            raise
        raise ValueError(f"{NAME}: {path} is not a readable .npz ({err})") from None
    if joints.ndim != 3 or joints.shape[1:] != (kp.NUM_KEYPOINTS, 3) or not (
            len(subjects) == len(sequence) == len(frame) == len(joints)):
        raise ValueError(f"{NAME}: {path}: expected joints_3d (N, 21, 3) and N subjects, sequences and frames, got "
                         f"{joints.shape}, {len(subjects)}, {len(sequence)}, {len(frame)}")
    if not np.isfinite(joints).all():
        raise ValueError(f"{NAME}: {path}: joints_3d holds NaN or infinite values")
    numbers = np.array([subject_number(s) for s in subjects], np.int64)
    keep = np.isin(numbers, SPLIT_SUBJECTS[split]) if split != "all" else np.ones(len(numbers), bool)
    mirrored = joints[keep] * np.array([-1.0, 1.0, 1.0])          # left hands -> right hands: x' = -x
    root = mirrored[:, kp.ROOT].copy()
    return RealPoses(joints=mirrored - root[:, None], root=root, subject=numbers[keep], sequence=sequence[keep],
                     frame=frame[keep], split=split, path=path)
