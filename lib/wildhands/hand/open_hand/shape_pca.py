"""The open hand's shape space: principal components of a population of anatomically varied hands
(size, palm breadth and length, finger lengths, finger and palm thickness), made by deforming the
template bone by bone and blending by the skinning weights; 10 directions ordered by variance,
scaled to unit variance per coefficient like MANO's betas.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wildhands.hand.open_hand.anatomy import DIGIT_JOINTS, Skeleton, rest_skeleton

NUM_BETAS = 10
SHAPE_POPULATION = 600
# Population spread (standard deviations of ratios to the average hand): hand length about 10 mm
# (men and women pooled, Zafar 2017), palm breadth, length and thickness, finger lengths (common
# and per digit) and thickness (common, correlated with the palm's, and per digit).
SHAPE_SPREAD = {"size": 0.055, "palm_breadth": 0.035, "palm_length": 0.03, "palm_thickness": 0.07,
                "finger_length": 0.03, "digit_length": 0.02, "finger_thickness": 0.05, "digit_thickness": 0.02}


@dataclass
class Proportions:
    size: float = 1.0
    palm_breadth: float = 1.0
    palm_length: float = 1.0
    palm_thickness: float = 1.0
    finger_lengths: dict = field(default_factory=dict)
    finger_thickness: dict = field(default_factory=dict)

    def skeleton(self) -> Skeleton:
        return rest_skeleton(self.size, self.palm_breadth, self.palm_length, self.palm_thickness,
                             self.finger_lengths)


def sample_proportions(rng: np.random.Generator) -> Proportions:
    """One anatomically varied hand, as ratios to the average."""
    spread = SHAPE_SPREAD
    palm_thickness = np.exp(rng.normal(0, spread["palm_thickness"]))
    common_length = rng.normal(0, spread["finger_length"])
    common_thickness = 0.6 * np.log(palm_thickness) + rng.normal(0, spread["finger_thickness"])
    names = list(DIGIT_JOINTS)
    return Proportions(
        size=float(np.exp(rng.normal(0, spread["size"]))),
        palm_breadth=float(np.exp(rng.normal(0, spread["palm_breadth"]))),
        palm_length=float(np.exp(rng.normal(0, spread["palm_length"]))),
        palm_thickness=float(palm_thickness),
        finger_lengths={n: float(np.exp(common_length + rng.normal(0, spread["digit_length"]))) for n in names},
        finger_thickness={n: float(np.exp(common_thickness + rng.normal(0, spread["digit_thickness"])))
                          for n in names})


def deform(verts: np.ndarray, weights: np.ndarray, skeleton: Skeleton, proportions: Proportions) -> np.ndarray:
    """The template moved to other ``proportions``: the palm stretches about the wrist, each digit
    segment stretches along its bone and thickens across it, blended by the skinning weights."""
    new = proportions.skeleton()
    p = proportions
    palm = verts * np.array([p.palm_length, p.palm_thickness, p.palm_breadth]) * p.size
    out = weights[:, :1] * palm
    for name, ids in DIGIT_JOINTS.items():
        old_d, new_d = skeleton.digits[name], new.digits[name]
        old_pts, new_pts = old_d.points, new_d.points
        for k, joint in enumerate(ids):
            rel = verts - old_pts[k]
            along = rel @ old_d.direction
            across = rel - along[:, None] * old_d.direction
            stretch = np.linalg.norm(new_pts[k + 1] - new_pts[k]) / np.linalg.norm(old_pts[k + 1] - old_pts[k])
            moved = (new_pts[k] + (along * stretch)[:, None] * new_d.direction
                     + across * p.size * p.finger_thickness.get(name, 1.0))
            out += weights[:, joint:joint + 1] * moved
    return out


def shape_space(verts: np.ndarray, weights: np.ndarray, skeleton: Skeleton, seed: int = 0,
                count: int = SHAPE_POPULATION, num_betas: int = NUM_BETAS) -> tuple[np.ndarray, np.ndarray]:
    """(shapedirs (V, 3, num_betas), explained variance ratio (num_betas,)) from a population of
    ``count`` varied hands. Coefficients have unit variance over the population; the first
    direction grows the hand, the others' signs make their largest entry positive."""
    rng = np.random.default_rng([seed, 1])
    offsets = np.stack([(deform(verts, weights, skeleton, sample_proportions(rng)) - verts).ravel()
                        for _ in range(count)])
    offsets -= offsets.mean(0)
    _, singular, vt = np.linalg.svd(offsets, full_matrices=False)
    vt = vt[:num_betas] * np.sign(vt[np.arange(num_betas), np.abs(vt[:num_betas]).argmax(1)])[:, None]
    if vt[0] @ verts.ravel() < 0:
        vt[0] = -vt[0]
    std = singular[:num_betas] / np.sqrt(count - 1)
    shapedirs = (vt * std[:, None]).reshape(num_betas, -1, 3).transpose(1, 2, 0)
    return shapedirs, (singular[:num_betas] ** 2) / (singular ** 2).sum()

