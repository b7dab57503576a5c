"""MPII+NZSL: CMU's "Hands with Manual Keypoint Annotations" (Simon et al., CVPR 2017).

On disk, as published (the ``hand_labels`` archive)::

    <root>/manual_train/<name>.jpg + <name>.json    1912 hands (paper's training split)
    <root>/manual_test/<name>.jpg + <name>.json     846 hands (paper's test split)

One JSON per hand image: ``hand_pts`` 21 rows [x, y, flag] in image pixels in the OpenPose
order (flag 1: labelled, 0: not; unlabelled rows hold no meaningful position) and ``is_left``
(0/1); the image has the JSON's name with ``.jpg``. Images from MPII Human Pose and from the
New Zealand Sign Language exercises; 2D labels only. Assumed: the labels' pixel convention is
ours (pixel centres at integer coordinates).
"""
from __future__ import annotations

import numpy as np

from wildhands.data.datasets.common import (DatasetNotFound, HandRecord, check_root, check_split, flagged_keypoints,
                                            natural_key, progress, read_json, require_files)

NAME = "mpii_nzsl"
SPLITS = {"train": "manual_train", "test": "manual_test"}


def load_mpii_nzsl(root, split: str = "train") -> list[HandRecord]:
    """MPII+NZSL records of ``split`` ('train': manual_train, 'test': manual_test)."""
    check_split(NAME, split, SPLITS)
    folder = SPLITS[split]
    root = check_root(NAME, root, [f"{folder}/*.json", f"{folder}/*.jpg"])
    require_files(NAME, root, [folder])
    files = sorted((root / folder).glob("*.json"), key=natural_key)
    if not files:
        raise DatasetNotFound(NAME, root, [f"{folder}/<name>.json", f"{folder}/<name>.jpg"],
                              hint=f"{root / folder} holds no annotation files")
    records = []
    for path in progress(files, f"{NAME} {split}"):
        data = read_json(path, NAME)
        where = f"{NAME}: {path}"
        try:
            points, is_left = np.asarray(data["hand_pts"], dtype=np.float64), data["is_left"]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: expected numeric 'hand_pts' and 'is_left' ({err})") from None
        keypoints, visible = flagged_keypoints(points, where, "hand_pts")
        records.append(HandRecord(
            image_path=path.with_suffix(".jpg"), keypoints_2d=keypoints, visible=visible, keypoints_3d=None,
            is_left=bool(is_left), intrinsics=None, root="wrist", scored=visible, dataset=NAME, split=split,
            id=f"{folder}/{path.stem}"))
    require_files(NAME, root, [r.image_path for r in records], hint=f"{folder} has JSON files without their .jpg")
    return records

