"""EGODEXTER (Mueller et al., ICCV 2017): hands with objects in clutter, egocentric view.

Evaluation only, fingertips only (paper sec. 7-8). On disk, as published::

    <root>/data/<Seq>/color/*.png                 640x480 colour frames
    <root>/data/<Seq>/annotation.txt_3D.txt       one line per colour frame

for the four sequences Desk, Fruits, Kitchen, Rotunda. Each line holds the 3D positions of
the five fingertips (thumb, index, middle, ring, little) as ``x, y, z;`` in millimetres in
the depth camera's frame; a fingertip without annotation is blank or all zeros. Only some
frames are annotated; frames without any annotated fingertip are skipped.

Assumed, as the evaluation code of the set's users does (the archive ships no calibration
file): the colour camera's intrinsics ``COLOR_K`` and the depth-to-colour extrinsics
``DEPTH_TO_COLOR`` = [R | t] (t in mm), p_colour = R p + t; the frames, sorted by name,
match the annotation lines in order; the hand is a left hand (``is_left``; pass False to
override).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from wildhands.data.datasets.common import FingertipSequences, HandRecord, intrinsics

NAME = "egodexter"
SEQUENCES = ("Desk", "Fruits", "Kitchen", "Rotunda")
SPLITS = ("test",)
IMAGE_SIZE = (640, 480)
COLOR_K = intrinsics(617.173, 617.173, 315.453, 242.259)
DEPTH_TO_COLOR = np.array([[1.0000, 0.00090442, -0.0074, 20.2365],
                           [-0.00071933, 0.9997, 0.0248, 1.2846],
                           [0.0075, -0.0248, 0.9997, 5.7360]])


def annotation_path(sequence: str) -> Path:
    return Path("data") / sequence / "annotation.txt_3D.txt"


def depth_to_color(points_mm: np.ndarray) -> np.ndarray:
    """(..., 3) depth-camera points (mm) -> colour-camera frame, mm."""
    return np.asarray(points_mm) @ DEPTH_TO_COLOR[:, :3].T + DEPTH_TO_COLOR[:, 3]


def load_egodexter(root, split: str = "test", is_left: bool = True) -> list[HandRecord]:
    """EGODEXTER fingertip records of the annotated frames (the set is evaluation-only)."""
    return FINGERTIP_SEQUENCES.records(root, split, is_left)


def _unannotated(tips_mm: np.ndarray) -> np.ndarray:
    return (np.abs(tips_mm) < 1e-6).all(axis=-1)      # all zeros (blank fields are NaN already)


FINGERTIP_SEQUENCES = FingertipSequences(NAME, SEQUENCES, SPLITS, annotation_path, _unannotated, depth_to_color,
                                         COLOR_K, IMAGE_SIZE)
