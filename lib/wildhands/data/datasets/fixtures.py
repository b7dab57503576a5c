"""Tiny stand-ins for the real data sets, written in each publisher's on-disk layout.

For tests and the paper dry run (``wildhands.app.dryrun``): a few frames per set, with a drawn
skeleton (skin-coloured bones, a red wrist) on a textured background where a hand should be,
so that crops, GrabCut and the loaders all see what the real files would give them. Never
real data, and never a substitute for it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wildhands.data.datasets import dexter_object, egodexter, stb
from wildhands.data.datasets.common import project
from wildhands.hand import keypoints as kp

WRIST, PINKY_TIP, INDEX_MCP = 0, 20, 5
FINGER_ANGLES = np.radians([-55.0, -22.0, -4.0, 14.0, 32.0])   # thumb .. pinky, from straight up
JOINT_RADII = ((0.2, 0.35, 0.48, 0.6),) + ((0.42, 0.62, 0.74, 0.85),) * 4


def hand_2d(cx: float, cy: float, size: float, left: bool = False) -> np.ndarray:
    """A 21 x 2 skeleton in the OpenPose order, wrist below, fingers up, the thumb on the left for a
    right hand (a palm seen from the front) and on the right for a left one."""
    side = -1.0 if left else 1.0
    points = [(cx, cy + size / 2)]
    for angle, radii in zip(FINGER_ANGLES, JOINT_RADII):
        points += [(cx + side * size * r * np.sin(angle), cy + size / 2 - size * r * np.cos(angle)) for r in radii]
    return np.array(points)


def hand_3d(depth: float = 0.5) -> np.ndarray:
    """21 x 3 metres in a camera frame: an 18 cm hand facing the camera at ``depth``."""
    flat = hand_2d(0.0, 0.0, 0.18)
    return np.column_stack([flat, depth + 0.01 * np.sin(np.arange(kp.NUM_KEYPOINTS))])


def write_image(path, width: int, height: int, points=None, seed: int = 0) -> None:
    """A textured background with, where ``points`` are given, a skin-coloured hand and a red wrist."""
    import cv2

    rng = np.random.default_rng(seed)
    image = rng.integers(40, 110, size=(height, width, 3), dtype=np.uint8)
    if points is not None:
        thickness = max(2, int(np.ptp(points[:, 1]) / 10))
        for parent, child in kp.BONES:
            cv2.line(image, tuple(np.round(points[parent]).astype(int).tolist()),
                     tuple(np.round(points[child]).astype(int).tolist()), (120, 160, 225), thickness)
        cv2.circle(image, tuple(np.round(points[WRIST]).astype(int).tolist()), 4, (0, 0, 255), -1)  # BGR red
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write the fixture image {path}")


def tip_line(tips, dims: int = 3) -> str:
    """One line of a DEXTER+OBJECT / EGODEXTER annotation file; NaN tips are left blank."""
    return "".join(("" if np.isnan(t).any() else ", ".join(f"{v:.4f}" for v in t[:dims])) + ";" for t in tips)


# ----------------------------------------------------------------------------- one writer per set

def write_stb(root, frames: int = 2, draw: bool = False) -> dict:
    """All 12 sequences; returns the colour-frame keypoints (metres, OpenPose order) of each frame."""
    import cv2
    import scipy.io

    root = Path(root)
    truth = {}
    rotation, _ = cv2.Rodrigues(np.array(stb.SK_DEPTH_FROM_COLOR_ROTATION))
    for s, sequence in enumerate(stb.SEQUENCES):
        colour = np.stack([hand_3d(0.45 + 0.05 * f + 0.01 * s) for f in range(frames)])   # OpenPose order
        depth_mm = colour * 1000 @ rotation.T + stb.SK_DEPTH_FROM_COLOR_TRANSLATION_MM
        stb_order = np.empty_like(depth_mm)
        stb_order[:, stb.STB_TO_OPENPOSE] = depth_mm
        path = root / "labels" / f"{sequence}_SK.mat"
        path.parent.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(path, {"handPara": stb_order.transpose(2, 1, 0)})
        bb = np.empty_like(colour)
        bb[:, stb.STB_TO_OPENPOSE] = colour * 1000
        scipy.io.savemat(root / "labels" / f"{sequence}_BB.mat", {"handPara": bb.transpose(2, 1, 0)})
        for f in range(frames):
            uv = project(colour[f], stb.SK_COLOR_K) if draw else None
            write_image(root / "images" / sequence / f"SK_color_{f}.png", 640, 480, uv, seed=f)
            for side in ("BB_left", "BB_right"):
                write_image(root / "images" / sequence / f"{side}_{f}.png", 32, 24)
        truth[sequence] = colour
    return truth


def write_panoptic(root) -> list:
    """Two hands, the second with its pinky tip unlabelled; returns their (21, 3) u, v, label rows."""
    root = Path(root)
    joints = [np.column_stack([hand_2d(200, 150, 120), np.ones(21)]),
              np.column_stack([hand_2d(300, 200, 100), np.ones(21)])]
    joints[1][PINKY_TIP, 2] = 0
    entries = [{"img_paths": f"imgs/{i:08d}.jpg", "joint_self": j.tolist(), "img_width": 640, "img_height": 480}
               for i, j in enumerate(joints)]
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    (root / "hands_v143_14817.json").write_text(json.dumps({"root": entries}))
    for i, j in enumerate(joints):
        write_image(root / f"imgs/{i:08d}.jpg", 640, 480, j[:, :2], seed=i)
    return joints


def write_mpii_nzsl(root) -> dict:
    """Two training hands and one test hand, index MCP unlabelled; returns {stem: (points, is_left)}."""
    root = Path(root)
    hands = {"manual_train/Ricki_unit_1.flv_000001_l": (hand_2d(220, 180, 140, left=True), 1),
             "manual_train/027079853_01_r": (hand_2d(320, 220, 160), 0),
             "manual_test/Berry_roof_story.flv_000053_l": (hand_2d(200, 200, 100, left=True), 1)}
    for i, (stem, (points, is_left)) in enumerate(hands.items()):
        pts = np.column_stack([points, np.ones(21)])
        pts[INDEX_MCP] = (0, 0, 0)   # unlabelled rows hold no position
        path = root / f"{stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"hand_pts": pts.tolist(), "is_left": is_left, "is_mpii": 0}))
        write_image(root / f"{stem}.jpg", 480, 400, points, seed=i)
    return hands


def _write_fingertip_sequences(root, module, depth: float, axes, frame_name: str, image_size, frames: int) -> None:
    """``frames`` annotated frames per sequence of a fingertip set (``module``: dexter_object or
    egodexter), the tips in its depth sensor's frame (times ``axes``), the hand drawn where they project."""
    root = Path(root)
    hand = hand_3d(depth)
    tips_colour = hand[list(kp.FINGERTIPS)]
    rotation, translation = module.DEPTH_TO_COLOR[:, :3], module.DEPTH_TO_COLOR[:, 3]
    sensor = np.linalg.solve(rotation, (tips_colour * 1000 - translation).T).T * axes
    uv = project(hand, module.COLOR_K)
    for sequence in module.SEQUENCES:
        path = root / module.annotation_path(sequence)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(tip_line(sensor) for _ in range(frames)) + "\n")
        for f in range(frames):
            write_image(root / "data" / sequence / "color" / frame_name.format(f), *image_size, uv, seed=f)


def write_dexter_object(root, frames: int = 1) -> None:
    """``frames`` annotated frames per sequence, the hand drawn where its fingertips project."""
    _write_fingertip_sequences(root, dexter_object, 0.5, dexter_object.SENSOR_TO_CAMERA_AXES, "image_{:05d}.png",
                               dexter_object.IMAGE_SIZE, frames)


def write_egodexter(root, frames: int = 1) -> None:
    """``frames`` annotated frames per sequence, the hand drawn where its fingertips project."""
    _write_fingertip_sequences(root, egodexter, 0.4, 1.0, "image_{}.png", (640, 480), frames)


# The paper's sets (training mixture and evaluation sets), as (profile [data] key, writer).
PAPER_SET_WRITERS = {
    "stb": lambda root: write_stb(root, frames=1, draw=True),
    "panoptic": write_panoptic,
    "mpii_nzsl": write_mpii_nzsl,
    "dexter_object": write_dexter_object,
    "egodexter": write_egodexter,
}


def write_paper_fixtures(root) -> dict:
    """Every set of the paper (STB, PANOPTIC, MPII+NZSL, DEXTER+OBJECT, EGODEXTER) under ``root``;
    returns the ``[data]`` table that points at them ({set: folder})."""
    root = Path(root)
    paths = {}
    for name, writer in PAPER_SET_WRITERS.items():
        writer(root / name)
        paths[name] = str(root / name)
    return paths
