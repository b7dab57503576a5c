"""What a hand detector says of one hand (``Detection``): keypoints per pass, handedness, world landmarks,
per-keypoint sigma, and the pass that found it. Its world landmarks show the hand as seen along the
ray to it (``hand.camera.world_landmarks_in_camera`` turns them into the camera's frame)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass
class Detection:
    """One hand found in an image, with everything MediaPipe says of it."""
    keypoints_2d: np.ndarray   # (21, 2) image pixels, our keypoint order
    handedness: str            # "left" or "right", for an ordinary (unmirrored) photo
    score: float               # MediaPipe's handedness score (0-1)
    box: tuple                 # (x0, y0, x1, y1): tight box around the keypoints, image pixels
    world_landmarks: np.ndarray | None = None  # (21, 3) metres, hand-centred, as seen along the ray to the hand
                                               # (x right, y down, z away; world_landmarks_in_camera)
    depth: np.ndarray | None = None            # (21,) MediaPipe's relative z in image pixels (wrist 0, < 0 nearer)
    sigma_px: np.ndarray | None = None         # (21,) per-keypoint uncertainty, image pixels per axis (None: unknown)
    passes: dict = field(default_factory=dict)  # pass name -> (21, 2) keypoints it gave, image pixels
    found_by: str = "hand"                     # FOUND_BY: the pass that found the hand
    low_confidence: bool = False               # keypoints guessed from a person's arm, not read from the hand

    def to_dict(self) -> dict:
        def listed(value):
            return None if value is None else np.round(np.asarray(value, float), 6).tolist()

        return {"keypoints_2d": listed(self.keypoints_2d), "handedness": self.handedness,
                "score": float(self.score), "box": [float(v) for v in self.box],
                "world_landmarks_m": listed(self.world_landmarks), "depth_px": listed(self.depth),
                "sigma_px": listed(self.sigma_px), "found_by": self.found_by,
                "low_confidence": self.low_confidence,
                "passes": {name: listed(points) for name, points in self.passes.items()}}

    def moved(self, keypoints_2d: np.ndarray, **changes) -> "Detection":
        """The same hand with other keypoints (and their box), and any other field changed."""
        return replace(self, keypoints_2d=keypoints_2d, box=tight_box(keypoints_2d), **changes)

    def mapped(self, to_image, scale: float, mirrored: bool = False) -> "Detection":
        """The hand found on a view of the image (a crop, a tile, a resized or flipped copy) in
        the image's pixels: ``to_image`` maps (N, 2) points, ``scale`` is image pixels per view
        pixel, ``mirrored`` when the view shows the image flipped left-right."""
        world = self.world_landmarks
        if mirrored and world is not None:
            world = world * [-1.0, 1.0, 1.0]
        return self.moved(to_image(self.keypoints_2d), world_landmarks=world,
                          depth=None if self.depth is None else self.depth * scale,
                          sigma_px=None if self.sigma_px is None else self.sigma_px * scale,
                          passes={k: to_image(v) for k, v in self.passes.items()})


def tight_box(points: np.ndarray) -> tuple:
    return tuple(float(v) for v in (*points.min(axis=0), *points.max(axis=0)))


def swap_handedness(label: str) -> str:
    """MediaPipe's label (mirrored-selfie convention) -> the hand's side in an ordinary photo."""
    label = label.lower()
    if label not in ("left", "right"):
        raise ValueError(f"handedness: expected 'Left' or 'Right' from MediaPipe, got {label!r}")
    return "right" if label == "left" else "left"
