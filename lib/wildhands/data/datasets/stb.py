"""STEREO (STB): the Stereo Hand Pose Tracking Benchmark (Zhang et al., ICIP 2017).

On disk, as published (the set's README)::

    <root>/images/<Seq>/SK_color_<i>.png       Intel RealSense F200 colour, 640x480
    <root>/images/<Seq>/BB_left_<i>.png        Point Grey Bumblebee2 stereo, left / right
    <root>/images/<Seq>/BB_right_<i>.png
    <root>/labels/<Seq>_SK.mat                 'handPara' 3 x 21 x 1500, millimetres
    <root>/labels/<Seq>_BB.mat

for the 12 sequences B1..B6 x (Counting, Random), frames i = 0..1499. The 21 keypoints are
the palm centre (not the wrist), then little, ring, middle, index and thumb, each MCP, PIP,
DIP, tip: the palm centre takes keypoint 0's place and records say ``root='palm'`` (the paper
adds a palm keypoint to MANO for this set). The hand is the actor's left hand (joint names
``*_L`` in the set's tools).

Split (paper sec. 8, after Zimmermann & Brox): train on B2..B6 (10 sequences, 15000 images),
test on B1Counting and B1Random (3000 images).

Cameras: ``camera='SK'`` (default) reads the colour images of the RealSense; its labels
(``*_SK.mat``) are in the RealSense depth camera's frame, and the published stereo extrinsics
map colour to depth coordinates, p_depth = R p_colour + t (R from the rotation vector by
Rodrigues' formula, t in mm), so p_colour = R^T (p_depth - t). ``camera='BB_left'`` /
``'BB_right'`` read the Bumblebee images with the ``*_BB.mat`` labels, which are in the left
camera's frame; the right camera sits ``BB_BASELINE_MM`` along +x (p_right = p_left - (b, 0, 0)).
Assumed, as the set's README and its users' loaders imply: labels are in those frames and the
published intrinsics place pixel centres at integer coordinates. Visibility is not labelled:
a keypoint is visible when it projects inside the image.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import scipy.io

from wildhands.data.datasets.common import (MM, HandRecord, check_root, check_split, inside_image, intrinsics,
                                            keypoint_order, project, require_files, to_openpose)
from wildhands.hand import keypoints as kp

NAME = "stb"
SEQUENCES = tuple(f"B{i}{kind}" for i in range(1, 7) for kind in ("Counting", "Random"))
SPLITS = {"train": SEQUENCES[2:], "test": SEQUENCES[:2]}
FRAMES_PER_SEQUENCE = 1500
IMAGE_SIZE = (640, 480)  # width, height

# STB's keypoint order in our names: ours with the fingers reversed (little finger first); keypoint
# 0 is the palm centre, stored in the wrist's slot. STB names its four thumb points MCP, PIP, DIP,
# tip; they are, base to tip, our CMC, MCP, IP, tip.
STB_KEYPOINTS = ("wrist",) + tuple(kp.KEYPOINT_NAMES[i] for finger in reversed(kp.FINGERS)
                                   for i in kp.FINGER_KEYPOINTS[finger])
STB_TO_OPENPOSE = keypoint_order(STB_KEYPOINTS)

# Published calibration (the set's README).
SK_COLOR_K = intrinsics(607.92271, 607.88192, 314.78337, 236.42484)
SK_DEPTH_FROM_COLOR_ROTATION = (0.00531, -0.01196, 0.00301)    # rotation vector (rad)
SK_DEPTH_FROM_COLOR_TRANSLATION_MM = (-24.0381, -0.4563, -1.2326)
BB_K = intrinsics(822.79041, 822.79041, 318.47345, 250.31296)  # both Bumblebee cameras
BB_BASELINE_MM = 120.054

CAMERAS = {  # camera -> (image prefix, label suffix, intrinsics)
    "SK": ("SK_color", "SK", SK_COLOR_K),
    "BB_left": ("BB_left", "BB", BB_K),
    "BB_right": ("BB_right", "BB", BB_K),
}


def sk_depth_to_color(points_mm: np.ndarray) -> np.ndarray:
    """(..., 3) RealSense depth-camera points -> colour-camera points (mm): R^T (p - t)."""
    rotation, _ = cv2.Rodrigues(np.asarray(SK_DEPTH_FROM_COLOR_ROTATION, dtype=np.float64))
    return (np.asarray(points_mm, dtype=np.float64) - SK_DEPTH_FROM_COLOR_TRANSLATION_MM) @ rotation


def label_path(sequence: str, camera: str = "SK") -> Path:
    return Path("labels") / f"{sequence}_{CAMERAS[camera][1]}.mat"


def image_path(sequence: str, frame: int, camera: str = "SK") -> Path:
    return Path("images") / sequence / f"{CAMERAS[camera][0]}_{frame}.png"


def read_hand_para(path: Path) -> np.ndarray:
    """(N, 21, 3) millimetres from a label file's 'handPara' (3 x 21 x N), in STB's keypoint order."""
    try:
        data = scipy.io.loadmat(path)
    except (ValueError, TypeError, OSError, NotImplementedError) as err:
        raise ValueError(f"{NAME}: {path} is not a readable MATLAB file ({err})") from None
    if "handPara" not in data:
        raise ValueError(f"{NAME}: {path} has no 'handPara' array (found {sorted(k for k in data if k[0] != '_')})")
    para = np.asarray(data["handPara"], dtype=np.float64)
    if para.ndim != 3 or para.shape[:2] != (3, 21):
        raise ValueError(f"{NAME}: {path}: 'handPara' must be 3 x 21 x frames, got {para.shape}")
    return para.transpose(2, 1, 0)


def load_stb(root, split: str = "train", camera: str = "SK") -> list[HandRecord]:
    """STB records of ``split`` ('train': B2-B6, 'test': B1) seen by ``camera`` (SK, BB_left, BB_right)."""
    check_split(NAME, split, SPLITS)
    if camera not in CAMERAS:
        raise ValueError(f"{NAME}: camera must be one of {tuple(CAMERAS)}, got {camera!r}")
    sequences = SPLITS[split]
    labels = [label_path(s, camera) for s in sequences]
    expected = labels + [Path("images") / s for s in sequences]
    root = check_root(NAME, root, expected)
    require_files(NAME, root, expected)
    K = CAMERAS[camera][2]
    records = []
    for sequence, label in zip(sequences, labels):
        points_mm = read_hand_para(root / label)
        if camera == "SK":
            points_mm = sk_depth_to_color(points_mm)
        elif camera == "BB_right":
            points_mm = points_mm - np.array([BB_BASELINE_MM, 0.0, 0.0])
        points = to_openpose(points_mm * MM, STB_TO_OPENPOSE)
        uv = project(points, K)
        visible = inside_image(uv, *IMAGE_SIZE).astype(float)
        for frame in range(len(points)):
            records.append(HandRecord(
                image_path=root / image_path(sequence, frame, camera), keypoints_2d=uv[frame],
                visible=visible[frame], keypoints_3d=points[frame], is_left=True, intrinsics=K, root="palm",
                scored=np.ones(len(STB_KEYPOINTS)), dataset=NAME, split=split, id=f"{sequence}/{frame}"))
    require_files(NAME, root, [r.image_path for r in records],
                  hint=f"The {camera} images of {', '.join(sequences)} are incomplete")
    return records
