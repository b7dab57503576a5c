"""The real-data training mixture (paper sec. 7): 3D-labelled and 2D-only hands as training samples.

``JointHandDataset`` takes record lists from any loaders (the paper: STB train with 3D labels,
PANOPTIC and MPII+NZSL train with 2D labels only) and yields samples in the project's training
sample format, the one ``synthetic.SyntheticHandDataset`` yields, so that the two mix in one
batch:

- ``image`` uint8 (S, S, 3) RGB crop of ``crop_scale`` l around the visible keypoints
  (``crops.crop_hand``), left hands mirrored to right ones;
- ``keypoints_2d`` float32 (21, 2) crop pixels, ``visible`` float32 (21,); keypoints the set
  does not give are 0 with ``visible`` 0;
- ``keypoints_3d`` float32 (21, 3) metres, camera frame, relative to keypoint 0 (x negated for
  left hands), and ``has_3d`` 1 where all 21 are known; zeros and 0 otherwise;
- ``mask`` uint8 (S, S) {0, 1} and ``has_mask``: a GrabCut mask from the 2D keypoints on the
  crop (``masks.MaskCache``: computed once, kept as PNG files) for the samples ``grabcut``
  selects (default: the 2D-only ones, which have no other shape cue), zeros and 0 otherwise;
- ``betas``, ``pose``, ``global_orient``, ``scale``, ``trans`` float32 zeros with
  ``has_params`` 0 (real data carry no hand-model parameters);
- ``is_left`` bool, ``index`` int (position in the mixture), ``source`` str (the data set).

Nothing here is random: augmentation and detector noise are applied downstream
(``inputs``), seeded per sample.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wildhands.config import setting
from wildhands.data.crops import crop_hand
from wildhands.data.datasets.common import HandRecord
from wildhands.data.images import read_image
from wildhands.data.masks import MaskCache
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import CROP_SCALE, CROP_SIZE, mirror_points_3d
from wildhands.paths import OUTPUTS_DIR

GRABCUT_CHOICES = ("2d_only", "all", "none")


def default_mask_dir() -> Path:
    """Where GrabCut masks of real data sets are cached: outputs/data/masks."""
    return OUTPUTS_DIR / "data" / "masks"


def _has_visible_bone(visible: np.ndarray) -> bool:
    return any(visible[parent] > 0 and visible[child] > 0 for parent, child in kp.BONES)


class JointHandDataset(torch.utils.data.Dataset):
    """Training samples from several record lists (see the module docstring for the format)."""

    def __init__(self, *record_lists, crop_scale: float = CROP_SCALE, crop_size: int = CROP_SIZE,
                 grabcut: str = "2d_only", mask_dir=None, band: float = 70, iterations: int = 5,
                 band_label: str = "probable_background", num_betas: int = 10, num_pose: int = 10):
        self.records: list[HandRecord] = [r for records in record_lists for r in records]
        if not self.records:
            raise ValueError("JointHandDataset: no records (every record list given is empty)")
        bad = [r for r in self.records if not isinstance(r, HandRecord)]
        if bad:
            raise ValueError(f"JointHandDataset: expected HandRecord items, got {type(bad[0]).__name__}")
        if grabcut not in GRABCUT_CHOICES:
            raise ValueError(f"grabcut: expected one of {GRABCUT_CHOICES}, got {grabcut!r}")
        self.crop_scale, self.crop_size = float(crop_scale), int(crop_size)
        self.grabcut = grabcut
        self.mask_cache = None if grabcut == "none" else MaskCache(
            default_mask_dir() if mask_dir is None else mask_dir, band, iterations, band_label)
        self.num_betas, self.num_pose = int(num_betas), int(num_pose)

    @classmethod
    def from_config(cls, config: dict, *record_lists, crop_scale: float | None = None, **kwargs):
        """The mixture with the profile's crop, GrabCut and hand-model sizes (``crop_scale`` overrides,
        e.g. 1.5 for the STB experiment)."""
        pre = {key: setting(config, "preprocess", key)
               for key in ("crop_scale", "crop_size", "grabcut_band", "grabcut_iterations")}
        hand = {key: setting(config, "hand_model", key) for key in ("num_betas", "num_pca_comps")}
        return cls(*record_lists, crop_scale=pre["crop_scale"] if crop_scale is None else crop_scale,
                   crop_size=pre["crop_size"], band=pre["grabcut_band"], iterations=pre["grabcut_iterations"],
                   num_betas=hand["num_betas"], num_pose=hand["num_pca_comps"], **kwargs)

    def __len__(self) -> int:
        return len(self.records)

    def counts(self) -> dict:
        """Samples per source data set, and how many have 3D labels and GrabCut masks."""
        out = {}
        for r in self.records:
            entry = out.setdefault(r.dataset, {"samples": 0, "with_3d": 0, "with_mask": 0})
            entry["samples"] += 1
            entry["with_3d"] += int(r.has_3d)
            entry["with_mask"] += int(self._wants_mask(r))
        return out

    def _wants_mask(self, record: HandRecord) -> bool:
        if self.grabcut == "none" or not _has_visible_bone(record.visible):  # GrabCut's seeds are bones
            return False
        return self.grabcut == "all" or not record.has_3d

    def _crop(self, record: HandRecord):
        if not record.visible.any():
            raise ValueError(f"{record.dataset} record {record.id!r}: no visible keypoint to crop around")
        image = read_image(record.image_path)
        crop, transform = crop_hand(image, record.keypoints_2d, record.visible, self.crop_scale, self.crop_size,
                                    mirror=record.is_left)
        points = transform.to_crop(record.keypoints_2d)
        points = np.where(np.isfinite(points) & (record.visible[:, None] > 0), points, 0.0)
        return crop, points

    def _mask(self, record: HandRecord, crop: np.ndarray, points: np.ndarray) -> np.ndarray:
        image_id = f"{record.dataset}/{record.split}/{record.id}"
        return self.mask_cache.get(image_id, crop, points, record.visible)

    def prepare_masks(self) -> int:
        """Compute (or find cached) the GrabCut mask of every sample that gets one; returns how many
        were computed now."""
        from tqdm.auto import tqdm

        if self.mask_cache is None:
            return 0
        before = self.mask_cache.computed
        wanted = [r for r in self.records if self._wants_mask(r)]
        for record in tqdm(wanted, desc="GrabCut masks", unit="mask", disable=len(wanted) < 2):
            self._mask(record, *self._crop(record))
        return self.mask_cache.computed - before

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} outside the {len(self)} samples of the mixture")
        record = self.records[index]
        crop, points = self._crop(record)
        size = self.crop_size
        if record.has_3d:
            points_3d = record.keypoints_3d - record.keypoints_3d[kp.ROOT]
            if record.is_left:
                points_3d = mirror_points_3d(points_3d)
        else:
            points_3d = np.zeros((kp.NUM_KEYPOINTS, 3))
        with_mask = self._wants_mask(record)
        mask = self._mask(record, crop, points) if with_mask else np.zeros((size, size), np.uint8)
        return {
            "image": crop,
            "keypoints_2d": points.astype(np.float32),
            "visible": record.visible.astype(np.float32),
            "keypoints_3d": points_3d.astype(np.float32),
            "has_3d": np.float32(record.has_3d),
            "mask": mask.astype(np.uint8),
            "has_mask": np.float32(with_mask),
            "betas": np.zeros(self.num_betas, np.float32),
            "pose": np.zeros(self.num_pose, np.float32),
            "global_orient": np.zeros(3, np.float32),
            "scale": np.zeros(1, np.float32),
            "trans": np.zeros(2, np.float32),
            "has_params": np.float32(0),
            "is_left": record.is_left,
            "index": index,
            "source": record.dataset,
        }
