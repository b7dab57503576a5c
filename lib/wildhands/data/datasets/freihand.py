"""FreiHAND (Zimmermann et al., ICCV 2019), beyond the paper: real right hands with 3D labels.

On disk, as published (``FreiHAND_pub_v2`` and its evaluation annotations)::

    <root>/training_xyz.json, training_K.json     32560 entries each
    <root>/training/rgb/%08d.jpg                   4 x 32560 images, 224x224
    <root>/evaluation_xyz.json, evaluation_K.json  3960 entries each
    <root>/evaluation/rgb/%08d.jpg

``*_xyz.json`` lists per sample 21 x 3 keypoints in metres in the camera frame, in the
OpenPose order; ``*_K.json`` the 3 x 3 intrinsics. Training image i + v * 32560 shows sample i
in version v (0 green screen, 1 and 2 background replaced, 3 auto-coloured), all with the same
labels. All hands are right hands. Splits: 'train' (training, all versions by default) and
'test' (evaluation). Keypoints are visible when they project inside the image (the set has no
occlusion labels); the projection's pixel convention is taken to be ours.
"""
from __future__ import annotations

import numpy as np

from wildhands.data.datasets.common import (HandRecord, check_root, check_split, inside_image, progress, project,
                                            read_json, require_files)
from wildhands.hand import keypoints as kp

NAME = "freihand"
SPLITS = {"train": "training", "test": "evaluation"}
VERSIONS = (0, 1, 2, 3)
IMAGE_SIZE = (224, 224)


def load_freihand(root, split: str = "train", versions=VERSIONS) -> list[HandRecord]:
    """FreiHAND records of ``split``; ``versions`` picks the training image versions (0-3)."""
    check_split(NAME, split, SPLITS)
    prefix = SPLITS[split]
    files = [f"{prefix}_xyz.json", f"{prefix}_K.json", f"{prefix}/rgb"]
    root = check_root(NAME, root, files)
    require_files(NAME, root, files)
    try:
        xyz = np.asarray(read_json(root / files[0], NAME), dtype=np.float64)
        Ks = np.asarray(read_json(root / files[1], NAME), dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{NAME}: {files[0]} and {files[1]} must hold numeric arrays ({err})") from None
    if xyz.ndim != 3 or xyz.shape[1:] != (kp.NUM_KEYPOINTS, 3) or Ks.shape != (len(xyz), 3, 3):
        raise ValueError(f"{NAME}: {files[0]} must list N x 21 x 3 and {files[1]} N x 3 x 3, "
                         f"got {xyz.shape} and {Ks.shape}")
    versions = tuple(versions) if split == "train" else (0,)
    if not versions or not set(versions) <= set(VERSIONS):
        raise ValueError(f"{NAME}: versions must be a non-empty subset of {VERSIONS}, got {versions}")
    uv = project(xyz, Ks[:, None])
    visible = inside_image(uv, *IMAGE_SIZE).astype(float)
    records = []
    samples = [(i, i + version * len(xyz)) for version in versions for i in range(len(xyz))]
    for i, number in progress(samples, f"{NAME} {split}"):
        records.append(HandRecord(
            image_path=root / prefix / "rgb" / f"{number:08d}.jpg", keypoints_2d=uv[i], visible=visible[i],
            keypoints_3d=xyz[i], is_left=False, intrinsics=Ks[i], root="wrist",
            scored=np.ones(kp.NUM_KEYPOINTS), dataset=NAME, split=split, id=f"{prefix}/{number:08d}"))
    require_files(NAME, root, [r.image_path for r in records], hint=f"{prefix}/rgb is incomplete")
    return records
