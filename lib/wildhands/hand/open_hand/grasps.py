"""The open hand's named poses: reference grasps and gestures as joint angles, the thumb brought
onto a finger's pad or side by inverse kinematics where the pose needs a contact.
"""
from __future__ import annotations

import numpy as np

from wildhands.hand import keypoints as kp
from wildhands.hand.open_hand.anatomy import DIGIT_JOINTS, FINGERS4, MM, Skeleton
from wildhands.hand.open_hand.kinematics import JointFrames, angles_to_pose, chain, forward, joint_ranges, posed_tips
from wildhands.hand.open_hand.surface import digit_sections


def _angles(fingers: dict, thumb=(0.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """(15, 3) joint angles (degrees) from per-finger (MCP flexion, MCP abduction, PIP, DIP) and the
    thumb's (CMC flexion, CMC abduction, MCP, IP)."""
    out = np.zeros((15, 3))
    for name, (mcp, abd, pip, dip) in fingers.items():
        a, b, c = (j - 1 for j in DIGIT_JOINTS[name])
        out[a, :2], out[b, 0], out[c, 0] = (mcp, abd), pip, dip
    cmc, cmc_abd, mcp, ip = thumb
    a, b, c = (j - 1 for j in DIGIT_JOINTS["thumb"])
    out[a, :2], out[b, 0], out[c, 0] = (cmc, cmc_abd), mcp, ip
    return out


def _fingers(index, middle, ring, pinky) -> dict:
    return {"index": index, "middle": middle, "ring": ring, "pinky": pinky}


_CURLED = _fingers((88, 0, 100, 55), (90, 0, 102, 55), (90, 0, 102, 55), (90, 0, 100, 50))
_STRAIGHT = (0, 0, 0, 0)


def _digit_capsules(skeleton: Skeleton, pose: np.ndarray, names) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posed phalanges of ``names`` as capsules: (n, 3) starts, (n, 3) ends and (n,) radii (the
    thinnest half-section of each phalanx)."""
    joints = forward(skeleton.joints, pose)[0][0]
    tips = posed_tips(skeleton, pose)[0]
    starts, ends, radii = [], [], []
    for name in names:
        digit = skeleton.digits[name]
        chain = [joints[j] for j in DIGIT_JOINTS[name]] + [tips[kp.MANO_TIP_ORDER.index(name)]]
        offsets = digit.joint_offsets
        for k in range(3):
            starts.append(chain[k])
            ends.append(chain[k + 1])
            radii.append(float(np.min(digit_sections(digit, np.array([0.5 * (offsets[k] + offsets[k + 1])])))))
    return np.array(starts), np.array(ends), np.array(radii)


def _capsule_overlap(points: np.ndarray, point_radii: np.ndarray, starts, ends, radii) -> np.ndarray:
    """(n,) how far (>= 0) spheres at ``points`` reach into each capsule, at their deepest."""
    e = ends - starts
    t = np.clip(np.einsum("pnk,nk->pn", points[:, None] - starts[None], e) / (e * e).sum(1), 0.0, 1.0)
    gap = np.linalg.norm(points[:, None] - (starts[None] + t[..., None] * e[None]), axis=-1)
    return np.maximum(point_radii[:, None] + radii[None] - gap, 0.0).max(0)


def _thumb_to(skeleton: Skeleton, frames: JointFrames, fingers: dict, target, start) -> tuple:
    """Thumb angles (CMC flexion, CMC abduction, MCP, IP) within their ranges that bring the thumb
    tip to ``target(tips, joints)`` (a point computed from the posed fingers) while keeping the
    thumb's phalanges out of the fingers', by least squares."""
    from scipy.optimize import least_squares

    flexion, abduction = joint_ranges()
    cmc, mcp, ip = (j - 1 for j in DIGIT_JOINTS["thumb"])
    low = [flexion[cmc, 0], abduction[cmc, 0], flexion[mcp, 0], flexion[ip, 0]]
    high = [flexion[cmc, 1], abduction[cmc, 1], flexion[mcp, 1], flexion[ip, 1]]
    finger_pose = angles_to_pose(_angles(fingers), frames)
    glob_r, glob_t = chain(skeleton.joints, finger_pose)
    goal = target(posed_tips(skeleton, finger_pose)[0], glob_t[0], glob_r[0])

    fingers_capsules = _digit_capsules(skeleton, finger_pose, FINGERS4)
    samples = np.linspace(0.0, 1.0, 5)[:, None]

    def residual(x):
        pose = angles_to_pose(_angles(fingers, x), frames)
        starts, ends, radii = _digit_capsules(skeleton, pose, ("thumb",))
        points = np.concatenate([a + samples * (b - a) for a, b in zip(starts[1:], ends[1:])])
        overlap = _capsule_overlap(points, np.repeat(radii[1:], len(samples)), *fingers_capsules)
        return np.concatenate([(ends[-1] - goal) / MM, 0.02 * (x - np.asarray(start)), 3.0 * overlap / MM])

    x = least_squares(residual, np.clip(start, low, high), bounds=(low, high), method="trf",
                      xtol=1e-12, ftol=1e-12, gtol=1e-12).x
    # Converged tightly, the solution differs between CPUs (SIMD paths) only in its last digits;
    # rounding removes them, so the corpus, and with it the model's hash, is the same everywhere.
    return tuple(round(float(v), 2) for v in x)


def named_poses(skeleton: Skeleton, frames: JointFrames) -> dict:
    """Reference grasps and gestures as (15, 3) joint angles in degrees (``POSES``, in its order);
    thumb contacts by inverse kinematics (the thumb tip onto a finger's pad or side)."""
    contacts = _thumb_contacts(skeleton)
    poses = {}
    for name, (fingers, thumb) in POSES.items():
        if thumb is None:
            target, start = contacts[name]
            thumb = _thumb_to(skeleton, frames, fingers, target, start)
        poses[name] = _angles(fingers, thumb)
    return poses


_FIST_THUMB = (10, 20, 50, 70)        # across the middle phalanges of the index and middle fingers
# name -> (per-finger angles as ``_angles`` takes them, the thumb's; None: set by a contact,
# ``_thumb_contacts``). The order is the corpus' (``pose_pca.pose_corpus`` draws them by index).
POSES = {
    "flat": (_fingers(*[_STRAIGHT] * 4), (0.0, 0.0, 0.0, 0.0)),
    "relaxed": (_fingers((20, 0, 30, 20), (25, 0, 35, 22), (28, 0, 38, 25), (30, 0, 40, 27)), (10, 10, 10, 10)),
    "fist": (_CURLED, _FIST_THUMB),
    "point": (dict(_CURLED, index=(5, 0, 5, 3)), _FIST_THUMB),
    "pinch": (_fingers((40, 0, 45, 25), (40, 0, 50, 30), (45, 0, 55, 32), (50, 0, 55, 32)), None),
    "spread": (_fingers((-5, 15, 0, 0), (-5, 6, 0, 0), (-5, 14, 0, 0), (-5, 25, 0, 0)), (-25, -5, 0, -5)),
    "cylinder": (_fingers((55, 0, 65, 40), (58, 0, 68, 42), (60, 0, 70, 45), (62, 0, 72, 45)), (25, 35, 20, 25)),
    "sphere": (_fingers((30, 10, 40, 25), (32, 0, 42, 27), (34, 8, 44, 28), (36, 16, 45, 28)), (10, 40, 15, 15)),
    "ok": (_fingers((45, 0, 60, 40), (10, 0, 15, 10), (12, 4, 18, 12), (15, 10, 20, 14)), None),
    "v_sign": (dict(_CURLED, index=(0, 10, 0, 0), middle=(0, -8, 0, 0)), None),
    "thumbs_up": (_CURLED, (-20, 0, 0, -5)),
    "horns": (dict(_CURLED, index=(0, 5, 0, 0), pinky=(0, 10, 0, 0)), _FIST_THUMB),
    "call": (dict(_CURLED, pinky=(0, 15, 0, 0)), (-20, 0, 0, 0)),
    "three": (dict(_CURLED, index=(0, 5, 0, 0), middle=(0, 0, 0, 0), ring=(0, 5, 0, 0)), None),
    "opposition": (_fingers((5, 5, 8, 5), (10, 0, 12, 8), (25, 2, 30, 20), (50, 0, 45, 25)), None),
    "key_pinch": (_fingers((55, 0, 75, 40), (75, 0, 95, 50), (80, 0, 95, 50), (85, 0, 95, 50)), None),
    "tripod": (_fingers((40, 0, 45, 25), (42, -4, 45, 25), (50, 0, 60, 35), (55, 0, 65, 35)), None),
    "claw": (_fingers(*[(0, 0, 90, 70)] * 4), (10, 10, 30, 40)),
    "table_top": (_fingers(*[(80, 0, 0, 0)] * 4), (20, 20, 10, 0)),
}


def _thumb_contacts(skeleton: Skeleton) -> dict:
    """name -> (where the thumb tip goes, ``target(tips, joints, rotations)`` of the posed fingers;
    the thumb angles the inverse kinematics starts from), for the poses whose thumb is None."""
    index_pad, middle_pad = _pad(skeleton, "index"), _pad(skeleton, "middle")
    return {
        "pinch": (index_pad, (20, 30, 15, 15)),
        "ok": (index_pad, (25, 30, 20, 20)),
        "v_sign": (_over_segment(skeleton, "ring", 1, 10 * MM), _FIST_THUMB),
        "three": (_over_segment(skeleton, "pinky", 1, 9 * MM), _FIST_THUMB),
        "opposition": (_pad(skeleton, "pinky"), (40, 40, 20, 20)),
        "key_pinch": (_radial_side("index", 1), (0, 5, 15, 15)),
        "tripod": (lambda t, j, r: 0.5 * (index_pad(t, j, r) + middle_pad(t, j, r)), (20, 35, 15, 15)),
    }


_TIP_INDEX = {n: i for i, n in enumerate(kp.MANO_TIP_ORDER)}


def _pad(skeleton: Skeleton, name: str, depth: float = 7 * MM):
    """Target: the pad of the finger ``name``, ``depth`` palmar of its tip and 2 mm back along it."""
    joint = DIGIT_JOINTS[name][-1]
    digit = skeleton.digits[name]
    tip = _TIP_INDEX[name]
    return lambda t, j, r: t[tip] - depth * (r[joint] @ digit.dorsal) - 2 * MM * (r[joint] @ digit.direction)


def _over_segment(skeleton: Skeleton, name: str, segment: int, depth: float):
    """Target: ``depth`` dorsal of the middle of the finger's phalanx ``segment`` (0 proximal)."""
    joint = DIGIT_JOINTS[name][segment]
    child = DIGIT_JOINTS[name][segment + 1] if segment < 2 else None
    digit = skeleton.digits[name]

    def point(t, j, r):
        end = j[child] if child is not None else t[_TIP_INDEX[name]]
        return 0.5 * (j[joint] + end) + depth * (r[joint] @ digit.dorsal)
    return point


def _radial_side(name: str, segment: int):
    """Target: the radial side of the middle of the finger's phalanx ``segment``, 10.5 mm out."""
    joint = DIGIT_JOINTS[name][segment]
    radial = np.array([0.0, 0.0, -1.0])
    return lambda t, j, r: 0.5 * (j[joint] + j[joint + 1]) + 10.5 * MM * (r[joint] @ radial)
