"""PANOPTIC: CMU's "Hands from Panoptic Studio by Multiview Bootstrapping" (Simon et al., CVPR 2017).

On disk, as published (the ``hand143_panopticdb`` archive)::

    <root>/hands_v143_14817.json     {"root": [entry, ...]}, one entry per annotated hand
    <root>/imgs/<name>.jpg

Each entry gives ``img_paths`` (relative to ``<root>``, e.g. ``imgs/00000000.jpg``) and
``joint_self``, 21 rows [x, y, flag] in image pixels in the OpenPose order (flag 1: labelled,
0: not), plus ``img_width`` / ``img_height``. The whole set is training data (paper sec. 7:
PANOPTIC, 2D labels only).

Assumption: the file records no hand side. Entries carrying an ``is_left`` key (0/1) are
honoured; all others are taken as right hands (``is_left=False``), so left hands in the set
reach the network unmirrored. The pixel convention of the labels is taken to be ours
(pixel centres at integer coordinates).
"""
from __future__ import annotations

import numpy as np

from wildhands.data.datasets.common import (HandRecord, check_root, check_split, flagged_keypoints, progress, read_json,
                                            require_files)

NAME = "panoptic"
ANNOTATION_FILE = "hands_v143_14817.json"
SPLITS = ("train",)


def load_panoptic(root, split: str = "train") -> list[HandRecord]:
    """PANOPTIC records (one per entry of the annotation file); only a 'train' split exists."""
    check_split(NAME, split, SPLITS)
    root = check_root(NAME, root, [ANNOTATION_FILE, "imgs/"])
    require_files(NAME, root, [ANNOTATION_FILE, "imgs"])
    data = read_json(root / ANNOTATION_FILE, NAME)
    entries = data.get("root") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{NAME}: {root / ANNOTATION_FILE} must hold {{'root': [entries]}}")
    records = []
    for i, entry in enumerate(progress(entries, NAME)):
        where = f"{NAME}: {ANNOTATION_FILE} entry {i}"
        try:
            relative, joints = entry["img_paths"], np.asarray(entry["joint_self"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: expected 'img_paths' and numeric 'joint_self' ({err})") from None
        keypoints, visible = flagged_keypoints(joints, where, "joint_self")
        records.append(HandRecord(
            image_path=root / relative, keypoints_2d=keypoints, visible=visible, keypoints_3d=None,
            is_left=bool(entry.get("is_left", False)), intrinsics=None, root="wrist", scored=visible,
            dataset=NAME, split=split, id=f"{relative}#{i}"))
    require_files(NAME, root, [r.image_path for r in records], hint="Images listed in the annotation file are missing")
    return records
