"""The open hand's pose space: principal components of a corpus of plausible poses.

The corpus: published joint ranges, DIP following PIP, fingers flexing together, abduction
shrinking with flexion, thumb opposition by inverse kinematics, named grasps and gestures
(``grasps``); or real hands' poses mixed with it. ``hands_mean`` is the corpus mean (a relaxed
hand: what theta = 0 means with smplx's default ``flat_hand_mean=False``); components are scaled
so that 10 coefficients drawn uniformly in [-2, 2] keep every joint inside its range (such a box
holds the relaxed middle of the corpus; a fist or a flat hand lies at 5-6 units).
"""
from __future__ import annotations

import numpy as np

from wildhands.hand.open_hand.anatomy import DIGIT_JOINTS, FINGERS4, Skeleton, rest_skeleton
from wildhands.hand.open_hand.grasps import named_poses
from wildhands.hand.open_hand.kinematics import JointFrames, angles_to_pose, joint_angles, joint_frames, joint_ranges

POSE_CORPUS_SIZE = 12000
NUM_PCA_CHECK = 10              # pose coefficients drawn in [-2, 2] must keep every joint in range
PCA_RANGE_SAMPLES = 20000
CORPUS_SAMPLE_STORED = 2000
REAL_RANGE_PERCENTILE = 1.0     # a real corpus' joint ranges: its central 98% (corpus_ranges)
TEMPLATE_SHARE = 0.4            # corpus share of named poses (with variation); the rest from synergies


def pose_corpus(named: dict, rng: np.random.Generator, count: int = POSE_CORPUS_SIZE) -> np.ndarray:
    """(count, 15, 3) joint angles in degrees of plausible hands.

    Named poses with per-joint variation, and synergy samples: one closure level for the hand,
    fingers following it (the ring finger bound to its neighbours, one finger sometimes moving on
    its own), MCP and PIP sharing the flexion in a per-sample style, DIP at two thirds of PIP,
    spread shrinking with flexion, and the thumb blended from the named poses' thumbs (rest,
    extended, over the fingers, opposed to each finger) in step with the closure."""
    flexion, abduction = joint_ranges()
    names = list(named)
    thumbs = np.stack([named[n][12:15] for n in names])
    open_thumbs = [names.index(n) for n in ("flat", "relaxed", "spread", "thumbs_up", "sphere")]
    closed_thumbs = [names.index(n) for n in ("fist", "point", "pinch", "cylinder", "opposition", "key_pinch",
                                              "tripod", "ok", "three")]
    out = np.zeros((count, 15, 3))
    for n in range(count):
        if rng.random() < TEMPLATE_SHARE:
            angles = named[names[rng.integers(len(names))]].copy()
            pip_noise = rng.normal(0, 6, 4)
            for k, name in enumerate(FINGERS4):
                a, b, c = (j - 1 for j in DIGIT_JOINTS[name])
                angles[a, 0] += rng.normal(0, 6)
                angles[a, 1] += rng.normal(0, 3)
                angles[b, 0] += pip_noise[k]
                angles[c, 0] += 0.67 * pip_noise[k] + rng.normal(0, 3)
            angles[12:15, :2] += rng.normal(0, [5, 4], (3, 2)) * [[1, 1], [1, 0.3], [1, 0]]
        else:
            closure = rng.uniform(-0.15, 1.0)
            style = np.clip(rng.normal(0, 0.25), -0.6, 0.6)
            own = closure + rng.normal(0, 0.08, 4)
            if rng.random() < 0.25:
                own[rng.choice(4, p=[0.5, 0.2, 0.1, 0.2])] = rng.uniform(-0.1, 1.0)
            own[2] = 0.5 * own[2] + 0.25 * (own[1] + own[3])
            own = np.clip(own, -0.15, 1.0)
            spread = rng.normal(3.0, 7.0)
            angles = np.zeros((15, 3))
            for k, (name, share) in enumerate(zip(FINGERS4, (1.0, 0.3, 0.8, 1.5))):
                a, b, c = (j - 1 for j in DIGIT_JOINTS[name])
                bent = max(own[k], 0.0)
                angles[a, 0] = 88 * bent * (1 + style) + 120 * min(own[k], 0.0)
                angles[a, 1] = (spread * share + rng.normal(0, 2)) * (1 - bent) ** 2
                angles[b, 0] = 102 * bent * (1 - style)
                angles[c, 0] = 0.67 * angles[b, 0] + rng.normal(0, 5)
            pool = closed_thumbs if rng.random() < closure else open_thumbs
            first, second = rng.choice(pool, 2)
            mix = rng.uniform()
            angles[12:15] = mix * thumbs[first] + (1 - mix) * thumbs[second]
            angles[12:15, :2] += rng.normal(0, [6, 5], (3, 2)) * [[1, 1], [1, 0.3], [1, 0]]
        angles[:, 0] = np.clip(angles[:, 0], flexion[:, 0], flexion[:, 1])
        angles[:, 1] = np.clip(angles[:, 1], abduction[:, 0], abduction[:, 1])
        out[n] = angles
    return out


def pose_space(corpus: np.ndarray, frames: JointFrames, seed: int = 0, ranges=None) -> dict:
    """PCA of (N, 45) axis-angle poses: ``hands_mean``, ``hands_components`` (45, 45; rows are
    principal directions times their standard deviation ``std`` times a common ``scale``), and
    the corpus' ``coefficients`` (N, 45) in that basis.

    Directions the corpus does not move (twists and abductions of the hinge joints) are completed
    deterministically from the unit axes with a small 1-degree spread. ``scale`` is the largest
    that keeps every joint of PCA_RANGE_SAMPLES poses with NUM_PCA_CHECK coefficients uniform in
    [-2, 2] inside its flexion and abduction range (``ranges``: (flexion, abduction) (15, 2) degrees,
    default ``joint_ranges()``)."""
    mean = corpus.mean(0)
    _, singular, vt = np.linalg.svd(corpus - mean, full_matrices=False)
    std = singular / np.sqrt(len(corpus) - 1)
    rank = int((std > np.radians(1.0)).sum())
    basis = vt[:rank] * np.sign(vt[np.arange(rank), np.abs(vt[:rank]).argmax(1)])[:, None]
    if joint_angles(mean + basis[0], frames)[..., 0].sum() < joint_angles(mean, frames)[..., 0].sum():
        basis[0] = -basis[0]                                  # the first coefficient closes the hand
    complement = np.eye(45) - basis.T @ basis
    extra = []
    for column in np.argsort(-np.linalg.norm(complement, axis=0), kind="stable"):
        v = complement[:, column] - sum((complement[:, column] @ e) * e for e in extra)
        if len(extra) < 45 - rank and np.linalg.norm(v) > 1e-6:
            extra.append(v / np.linalg.norm(v))
    directions = np.vstack([basis, np.array(extra)])
    spread = np.concatenate([std[:rank], np.full(45 - rank, np.radians(1.0))])
    flexion, abduction = joint_ranges() if ranges is None else ranges
    coefficients = np.random.default_rng([seed, 2]).uniform(-2, 2, (PCA_RANGE_SAMPLES, NUM_PCA_CHECK))

    def inside(scale: float) -> bool:
        pose = mean + coefficients @ (directions[:NUM_PCA_CHECK] * spread[:NUM_PCA_CHECK, None] * scale)
        angles = joint_angles(pose, frames)
        return bool(((angles[..., 0] >= flexion[:, 0]) & (angles[..., 0] <= flexion[:, 1])
                     & (angles[..., 1] >= abduction[:, 0] - 1e-6) & (angles[..., 1] <= abduction[:, 1] + 1e-6)).all())

    low, high = 0.0, 1.0
    for _ in range(16):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if inside(mid) else (low, mid)
    components = directions * spread[:, None] * low
    return {"hands_mean": mean, "hands_components": components, "scale": low, "std": spread,
            "coefficients": np.linalg.lstsq(components.T, (corpus - mean).T, rcond=None)[0].T}


def axis_angle_limits(corpus_pose: np.ndarray, margin_deg: float = 5.0) -> np.ndarray:
    """(45, 2) bounds of each axis-angle component over the corpus, widened by ``margin_deg``."""
    margin = np.radians(margin_deg)
    return np.stack([corpus_pose.min(0) - margin, corpus_pose.max(0) + margin], 1)


def mixed_pose_corpus(synthetic: np.ndarray, real: np.ndarray, synthetic_share: float, seed: int = 0) -> np.ndarray:
    """(M, 45) axis-angle poses: every pose of ``real`` plus synthetic ones drawn (deterministically)
    to make up ``synthetic_share`` (0 to < 1) of the mixture."""
    real = np.asarray(real, np.float64)
    if real.ndim != 2 or real.shape[1] != 45 or not np.isfinite(real).all() or not len(real):
        raise ValueError(f"real poses: expected finite (N, 45) axis-angles, got shape {real.shape}")
    if not 0 <= synthetic_share < 1:
        raise ValueError(f"synthetic_share: expected 0 <= share < 1, got {synthetic_share!r}")
    count = int(round(len(real) * synthetic_share / (1 - synthetic_share)))
    rng = np.random.default_rng([seed, 5])
    chosen = rng.choice(len(synthetic), count, replace=count > len(synthetic))
    mixture = np.concatenate([real, np.asarray(synthetic, np.float64)[chosen]])
    return mixture[rng.permutation(len(mixture))]        # the stored corpus sample draws from all of it


def synthetic_pose_corpus(seed: int = 0, skeleton: Skeleton | None = None) -> tuple[np.ndarray, JointFrames, dict]:
    """The builder's synthetic pose corpus (N, 45) axis-angles, its joint frames and named poses."""
    skeleton = skeleton or rest_skeleton()
    frames = joint_frames(skeleton)
    named = named_poses(skeleton, frames)
    return angles_to_pose(pose_corpus(named, np.random.default_rng([seed, 3])), frames), frames, named


def corpus_ranges(corpus: np.ndarray, frames: JointFrames, percentile: float = REAL_RANGE_PERCENTILE):
    """(flexion, abduction) (15, 2) degrees: the anatomical ranges of ``joint_ranges``, widened to
    the central 100 - 2 ``percentile`` % of the corpus' own joint angles (real hands, fitted with
    keypoints placed by annotators, leave the hinge joints' +-5 degrees of abduction)."""
    angles = joint_angles(corpus, frames)
    low, high = np.percentile(angles, percentile, axis=0), np.percentile(angles, 100 - percentile, axis=0)
    return tuple(np.stack([np.minimum(r[:, 0], low[:, q]), np.maximum(r[:, 1], high[:, q])], 1)
                 for q, r in enumerate(joint_ranges()))

