"""The open hand's joints in motion: anatomical joint ranges, each joint's flexion and abduction
frame, joint angles to and from MANO axis-angle poses, and forward kinematics with linear blend
skinning (MANO's, root rotation identity, no corrective blend shapes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wildhands.hand import keypoints as kp
from wildhands.hand.camera import rotate_vector, rotation_matrices, rotation_vectors
from wildhands.hand.open_hand.anatomy import DIGIT_JOINTS, Skeleton, unit

# Joint ranges in degrees, relative to the rest pose (hand_anatomy.md: Eaton's table, clinical
# references). Flexion is positive towards the palm (the thumb's CMC: across the palm towards the
# little finger; its MCP and IP: towards its pad); abduction is positive away from the middle
# finger (the middle finger: radially; the thumb's CMC: palmar, away from the palm).
FINGER_RANGES = {"mcp": ((-30.0, 90.0), None), "pip": ((0.0, 105.0), (-5.0, 5.0)), "dip": ((0.0, 85.0), (-5.0, 5.0))}
MCP_ABDUCTION = {"index": (-10.0, 20.0), "middle": (-12.0, 12.0), "ring": (-10.0, 18.0), "pinky": (-10.0, 30.0)}
THUMB_RANGES = {"cmc": ((-25.0, 50.0), (-15.0, 45.0)), "mcp": ((-10.0, 55.0), (-8.0, 8.0)),
                "ip": ((-15.0, 80.0), (-5.0, 5.0))}
# Flexing fingers converge towards the thenar (oblique flexion axes): the flexion plane of each
# finger turns radially by this many degrees.
FLEXION_CONVERGENCE_DEG = {"index": 0.0, "middle": 2.0, "ring": 4.0, "pinky": 7.0}
# Opposition pronates the thumb: CMC axial rotation per degree of CMC abduction and flexion.
THUMB_PRONATION_COUPLING = (0.6, 0.3)


def joint_ranges() -> tuple[np.ndarray, np.ndarray]:
    """(15, 2) flexion and (15, 2) abduction ranges in degrees, MANO joints 1-15."""
    flexion, abduction = np.zeros((15, 2)), np.zeros((15, 2))
    for name, ids in DIGIT_JOINTS.items():
        kinds = ("cmc", "mcp", "ip") if name == "thumb" else ("mcp", "pip", "dip")
        for joint, kind in zip(ids, kinds):
            flex, abd = THUMB_RANGES[kind] if name == "thumb" else FINGER_RANGES[kind]
            flexion[joint - 1] = flex
            abduction[joint - 1] = MCP_ABDUCTION[name] if abd is None else abd
    return flexion, abduction


@dataclass
class JointFrames:
    """Per MANO joint 1-15, unit vectors in the rest frame: the direction of the bone the joint
    moves, where positive flexion moves it, and where positive abduction moves it."""
    direction: np.ndarray   # (15, 3)
    flexion: np.ndarray     # (15, 3)
    abduction: np.ndarray   # (15, 3)

    @classmethod
    def from_pose_prior(cls, prior: dict) -> "JointFrames":
        """The frames stored in a model file's ``pose_prior``."""
        return cls(*(np.asarray(prior[k], np.float64) for k in
                     ("rest_directions", "flexion_directions", "abduction_directions")))

    @property
    def flexion_axes(self) -> np.ndarray:
        return np.cross(self.direction, self.flexion)

    @property
    def abduction_axes(self) -> np.ndarray:
        return np.cross(self.direction, self.abduction)


def joint_frames(skeleton: Skeleton) -> JointFrames:
    """Fingers flex towards the palm (the flexion plane turned radially by the convergence angle)
    and abduct away from the middle finger; the thumb's CMC flexes across the palm towards the
    little finger and abducts palmar, its MCP and IP flex towards its pad."""
    up, ulnar = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    direction, flexion, abduction = np.zeros((15, 3)), np.zeros((15, 3)), np.zeros((15, 3))
    for name, ids in DIGIT_JOINTS.items():
        digit = skeleton.digits[name]
        d = digit.direction
        if name == "thumb":
            cmc_flex = unit(ulnar - (ulnar @ d) * d)
            cmc_abd = unit(np.cross(d, cmc_flex))
            cmc_abd *= np.sign(-cmc_abd @ up)
            pad = -digit.dorsal
            frames = [(cmc_flex, cmc_abd), (pad, unit(np.cross(d, pad))), (pad, unit(np.cross(d, pad)))]
        else:
            flex = rotate_vector(-up, d, FLEXION_CONVERGENCE_DEG[name])
            away = -ulnar if name in ("index", "middle") else ulnar
            abd = unit(np.cross(d, flex))
            abd *= np.sign(abd @ away)
            frames = [(flex, abd)] * 3
        for joint, (f, a) in zip(ids, frames):
            direction[joint - 1], flexion[joint - 1], abduction[joint - 1] = d, f, a
    return JointFrames(direction, flexion, abduction)


def angles_to_pose(angles: np.ndarray, frames: JointFrames) -> np.ndarray:
    """(..., 45) MANO axis-angle pose from (..., 15, 3) joint angles in degrees: flexion,
    abduction and axial twist, composed as R = R_flexion R_abduction R_twist about the rest-frame
    axes: the bone leaves its flexion plane by the abduction angle, then turns in that plane by
    the flexion angle (so both stay measurable at any flexion); the twist turns it about itself.
    The thumb's CMC twist adds the pronation that opposition brings."""
    angles = np.radians(np.asarray(angles, np.float64))
    thumb = DIGIT_JOINTS["thumb"][0] - 1
    angles = angles.copy()
    angles[..., thumb, 2] += (THUMB_PRONATION_COUPLING[0] * angles[..., thumb, 1]
                              + THUMB_PRONATION_COUPLING[1] * angles[..., thumb, 0])
    flex = rotation_matrices(angles[..., 0:1] * frames.flexion_axes)
    abd = rotation_matrices(angles[..., 1:2] * frames.abduction_axes)
    twist = rotation_matrices(angles[..., 2:3] * _twist_axes(frames))
    return rotation_vectors(flex @ abd @ twist).reshape(angles.shape[:-2] + (45,))


def _twist_axes(frames: JointFrames) -> np.ndarray:
    """(15, 3) axes of positive axial twist: along each bone, but for the thumb's CMC the sense
    that pronates it (turns its pad from facing the index towards facing the little finger)."""
    axes = frames.direction.copy()
    cmc = DIGIT_JOINTS["thumb"][0] - 1
    pad = frames.flexion[cmc + 1]
    turned = np.cross(axes[cmc], pad)                  # where a twist about +direction moves the pad
    if turned @ np.array([0.0, -1.0, 1.0]) < 0:        # towards the palm's ulnar side
        axes[cmc] = -axes[cmc]
    return axes


def joint_angles(pose: np.ndarray, frames: JointFrames) -> np.ndarray:
    """(..., 15, 2) flexion and abduction in degrees of MANO axis-angle poses (..., 45), read from
    where each joint turns its bone: abduction is the bone's angle out of its flexion plane (the
    plane of its rest direction and flexion direction), flexion its angle within that plane from
    the rest direction. The inverse of ``angles_to_pose`` up to the twist."""
    rot = rotation_matrices(np.asarray(pose, np.float64).reshape(np.shape(pose)[:-1] + (15, 3)))
    moved = np.einsum("...ij,...j->...i", rot, np.broadcast_to(frames.direction, rot.shape[:-1]))
    along = np.einsum("...i,...i->...", moved, np.broadcast_to(frames.direction, moved.shape))
    side = np.einsum("...i,...i->...", moved, np.broadcast_to(frames.abduction, moved.shape))
    up = np.einsum("...i,...i->...", moved, np.broadcast_to(frames.flexion, moved.shape))
    flexion = np.degrees(np.arctan2(up, along))
    abduction = np.degrees(np.arcsin(np.clip(side, -1.0, 1.0)))
    return np.stack([flexion, abduction], -1)


def chain(joints: np.ndarray, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global rotations (N, 16, 3, 3) and joint positions (N, 16, 3) of (N, 45) poses along
    MANO's kinematic tree (root rotation identity)."""
    pose = np.atleast_2d(pose)
    rot = rotation_matrices(pose.reshape(-1, 15, 3))
    glob_r = np.zeros((len(pose), 16, 3, 3))
    glob_t = np.zeros((len(pose), 16, 3))
    glob_r[:, 0], glob_t[:, 0] = np.eye(3), joints[0]
    for j in range(1, 16):
        parent = kp.MANO_PARENTS[j]
        glob_r[:, j] = glob_r[:, parent] @ rot[:, j - 1]
        glob_t[:, j] = glob_t[:, parent] + np.einsum("nij,j->ni", glob_r[:, parent], joints[j] - joints[parent])
    return glob_r, glob_t


def forward(joints: np.ndarray, pose: np.ndarray, verts: np.ndarray | None = None,
            weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """MANO's forward kinematics and linear blend skinning for (N, 45) poses (global rotation
    identity, no corrective blend shapes): (posed joints (N, 16, 3), posed vertices (N, V, 3))."""
    glob_r, glob_t = chain(joints, pose)
    if verts is None:
        return glob_t, None
    offset = glob_t - np.einsum("njik,jk->nji", glob_r, joints)     # A_j x = R_j x + (t_j - R_j J_j)
    blended_r = np.einsum("vj,njik->nvik", weights, glob_r)
    blended_t = np.einsum("vj,nji->nvi", weights, offset)
    return glob_t, np.einsum("nvik,vk->nvi", blended_r, verts) + blended_t


def posed_tips(skeleton: Skeleton, pose: np.ndarray) -> np.ndarray:
    """(N, 5, 3) fingertips (thumb, index, middle, ring, pinky) carried by their distal joints."""
    joints = skeleton.joints
    glob_r, glob_t = chain(joints, pose)
    out = []
    for name, tip in zip(kp.MANO_TIP_ORDER, skeleton.tips):
        j = DIGIT_JOINTS[name][-1]
        out.append(glob_t[:, j] + np.einsum("nij,j->ni", glob_r[:, j], tip - joints[j]))
    return np.stack(out, 1)

