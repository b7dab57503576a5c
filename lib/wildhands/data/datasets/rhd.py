"""RHD, the Rendered Hand Pose Dataset (Zimmermann & Brox, ICCV 2017), beyond the paper: synthetic.

On disk, as published (``RHD_published_v2``)::

    <root>/training/anno_training.pickle        {sample id: annotation}, 41258 samples
    <root>/training/color/%05d.png              320x320
    <root>/evaluation/anno_evaluation.pickle    2728 samples
    <root>/evaluation/color/%05d.png

Each annotation holds ``uv_vis`` (42 x 3: u, v in pixels and a visibility flag), ``xyz``
(42 x 3, metres, camera frame) and ``K`` (3 x 3). Rows 0-20 are the left hand, 21-41 the
right, each as wrist, then thumb, index, middle, ring and little finger from tip to base
(RHD's tip-first order, converted here). Images may show both hands: ``hands='dominant'``
(default) keeps, per image, the hand with more visible keypoints (the right one on a tie), as
the set's authors evaluate; ``'both'`` keeps every hand with at least one visible keypoint.
Invisible keypoints keep their exact rendered positions but are masked (``visible`` 0).
"""
from __future__ import annotations

import pickle

import numpy as np

from wildhands.data.datasets.common import (HandRecord, check_root, check_split, keypoint_order, require_files,
                                            to_openpose)
from wildhands.hand import keypoints as kp

NAME = "rhd"
SPLITS = {"train": "training", "test": "evaluation"}
HANDS = ("dominant", "both")
RHD_KEYPOINTS = ("wrist",) + tuple(f"{finger}_{joint}" for finger in kp.FINGERS
                                   for joint in (("tip", "ip", "mcp", "cmc") if finger == "thumb"
                                                 else ("tip", "dip", "pip", "mcp")))
RHD_TO_OPENPOSE = keypoint_order(RHD_KEYPOINTS)
SIDES = {"left": slice(0, 21), "right": slice(21, 42)}


def load_rhd(root, split: str = "train", hands: str = "dominant") -> list[HandRecord]:
    """RHD records of ``split`` ('train': training, 'test': evaluation)."""
    check_split(NAME, split, SPLITS)
    if hands not in HANDS:
        raise ValueError(f"{NAME}: hands must be one of {HANDS}, got {hands!r}")
    folder = SPLITS[split]
    files = [f"{folder}/anno_{folder}.pickle", f"{folder}/color"]
    root = check_root(NAME, root, files)
    require_files(NAME, root, files)
    try:
        with open(root / files[0], "rb") as f:
            annotations = pickle.load(f, encoding="latin1")  # written by Python 2
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ValueError(f"{NAME}: {root / files[0]} is not a readable pickle ({err})") from None
    if not isinstance(annotations, dict):
        raise ValueError(f"{NAME}: {root / files[0]} must hold a dict of annotations by sample id")
    records = []
    for sample_id in sorted(annotations):
        anno = annotations[sample_id]
        where = f"{NAME}: {files[0]} sample {sample_id}"
        try:
            uv_vis = np.asarray(anno["uv_vis"], dtype=np.float64)
            xyz, K = np.asarray(anno["xyz"], dtype=np.float64), np.asarray(anno["K"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: expected 'uv_vis', 'xyz' and 'K' ({err})") from None
        if uv_vis.shape != (42, 3) or xyz.shape != (42, 3) or K.shape != (3, 3):
            raise ValueError(f"{where}: expected uv_vis 42x3, xyz 42x3, K 3x3, got "
                             f"{uv_vis.shape}, {xyz.shape}, {K.shape}")
        counts = {side: int((uv_vis[rows, 2] > 0).sum()) for side, rows in SIDES.items()}
        if hands == "dominant":
            sides = ["left" if counts["left"] > counts["right"] else "right"]
        else:
            sides = list(SIDES)
        for side in sides:
            if counts[side] == 0:
                continue
            rows = SIDES[side]
            records.append(HandRecord(
                image_path=root / folder / "color" / f"{int(sample_id):05d}.png",
                keypoints_2d=to_openpose(uv_vis[rows, :2], RHD_TO_OPENPOSE),
                visible=(to_openpose(uv_vis[rows, 2:], RHD_TO_OPENPOSE)[:, 0] > 0).astype(float),
                keypoints_3d=to_openpose(xyz[rows], RHD_TO_OPENPOSE), is_left=side == "left", intrinsics=K,
                root="wrist", scored=np.ones(kp.NUM_KEYPOINTS), dataset=NAME, split=split,
                id=f"{folder}/{int(sample_id):05d}/{side}"))
    require_files(NAME, root, sorted({r.image_path for r in records}), hint=f"{folder}/color is incomplete")
    return records
