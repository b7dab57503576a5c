"""The open hand model: a MANO-format right hand that the project builds itself, deterministically.

MANO's files are licensed and cannot ship, so this package builds a hand model in MANO's pickle
format that ``smplx`` loads unchanged (``wildhands.hand.hand_model.HandModel``); it is the default
when no MANO file is present. Its skeleton follows real captured hands (DexYCB); its surface and
joint ranges follow published anthropometry (../shared/hand_anatomy.md). The build runs through its modules in order:

- ``anatomy``: the rest frame, real proportions and the rest skeleton (MANO's 16 joints);
- ``surface``: the hand's surface as an implicit function;
- ``mesh``: that surface as a closed triangle mesh of about MANO's resolution;
- ``skinning``: linear-blend-skinning weights and the joint regressor;
- ``shape_pca``: the shape space (betas) from a population of varied hands;
- ``kinematics``: joint ranges and frames, joint angles <-> axis-angle poses, forward kinematics;
- ``grasps``: named grasps and gestures, thumb contacts by inverse kinematics;
- ``pose_pca``: the pose space from a corpus of plausible (or real) poses;
- ``build``: everything assembled into the model file (``build_open_hand_model``);
- ``measures``: anatomical measurements of a built model, for tests and benchmarks.

The names below are the package's interface; the rest live in their modules.
"""
from wildhands.hand.open_hand.anatomy import BONE_LENGTHS_MM, DIGIT_JOINTS, PALM_JOINTS_MM, hand_length, rest_skeleton
from wildhands.hand.open_hand.build import (MODEL_VERSION, build_differences, build_open_hand_model, replace_pose_space,
                                            save_open_hand_model)
from wildhands.hand.open_hand.kinematics import JointFrames, forward, joint_angles, posed_tips
from wildhands.hand.open_hand.measures import digit_penetration, knuckle_breadth
from wildhands.hand.open_hand.pose_pca import mixed_pose_corpus, synthetic_pose_corpus
from wildhands.hand.open_hand.shape_pca import deform, sample_proportions

__all__ = ["BONE_LENGTHS_MM", "DIGIT_JOINTS", "PALM_JOINTS_MM", "MODEL_VERSION", "JointFrames", "hand_length",
           "build_differences", "build_open_hand_model", "deform", "digit_penetration", "forward", "joint_angles",
           "knuckle_breadth", "mixed_pose_corpus", "posed_tips", "replace_pose_space", "rest_skeleton", "sample_proportions",
           "save_open_hand_model", "synthetic_pose_corpus"]
