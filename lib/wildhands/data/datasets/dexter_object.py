"""DEXTER+OBJECT (Sridhar et al., ECCV 2016): a hand manipulating a cuboid, third-person view.

Evaluation only, fingertips only (paper sec. 7-8). On disk, as published::

    <root>/data/<Seq>/color/*.png                      640x480 colour frames
    <root>/data/<Seq>/annotations/<Seq>3D.txt          one line per colour frame

for the six sequences Grasp1, Grasp2, Occlusion, Rigid, Pinch, Rotate. Each line holds the 3D
positions of the five fingertips (thumb, index, middle, ring, little) as ``x, y, z;`` in
millimetres, in the depth sensor's frame with x and y pointing the opposite way to ours
(left, up); a fingertip without annotation has z = 32001.

Assumed, as the evaluation code of the set's users does (the archive ships no calibration
file): the colour camera's intrinsics ``COLOR_K`` and the depth-to-colour extrinsics
``DEPTH_TO_COLOR`` = [R | t] (t in mm), so p_colour = R (-x, -y, z) + t; the frames, sorted by
name, match the annotation lines in order; the hand is a left hand (``is_left``; pass False
to override). Frames without any annotated fingertip are skipped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from wildhands.data.datasets.common import FingertipSequences, HandRecord, intrinsics

NAME = "dexter_object"
SEQUENCES = ("Grasp1", "Grasp2", "Occlusion", "Rigid", "Pinch", "Rotate")
SPLITS = ("test",)
IMAGE_SIZE = (640, 480)
COLOR_K = intrinsics(587.45209, 600.67456, 325.0, 249.0)
DEPTH_TO_COLOR = np.array([[0.9999, 0.0034, 0.0161, 19.0473],
                           [-0.0033, 1.0000, -0.0079, -1.8514],
                           [-0.0162, 0.0079, 0.9998, -4.7501]])
INVALID_Z_MM = 32001.0
SENSOR_TO_CAMERA_AXES = np.array([-1.0, -1.0, 1.0])  # the sensor's x and y point left and up


def annotation_path(sequence: str) -> Path:
    return Path("data") / sequence / "annotations" / f"{sequence}3D.txt"


def depth_to_color(points_mm: np.ndarray) -> np.ndarray:
    """(..., 3) annotation points (sensor frame, mm) -> colour-camera frame, mm."""
    rotation, translation = DEPTH_TO_COLOR[:, :3], DEPTH_TO_COLOR[:, 3]
    return (np.asarray(points_mm) * SENSOR_TO_CAMERA_AXES) @ rotation.T + translation


def load_dexter_object(root, split: str = "test", is_left: bool = True) -> list[HandRecord]:
    """DEXTER+OBJECT fingertip records (all six sequences; the set is evaluation-only)."""
    return FINGERTIP_SEQUENCES.records(root, split, is_left)


def _unannotated(tips_mm: np.ndarray) -> np.ndarray:
    return tips_mm[..., 2] == INVALID_Z_MM


FINGERTIP_SEQUENCES = FingertipSequences(NAME, SEQUENCES, SPLITS, annotation_path, _unannotated, depth_to_color,
                                         COLOR_K, IMAGE_SIZE)
