"""Real captured poses as training hands: what the 2D variant's sampled hands draw from DexYCB.

DexYCB (Chao et al., "DexYCB: A Benchmark for Capturing Hand Grasping of Objects", CVPR 2021,
CC BY-NC 4.0; ``datasets.real_poses``): only the TRAINING subjects (01-08) are ever read here,
so nothing learnt from these hands has seen the reporting subjects (09-10).

Each real hand is fitted once, 3D to 3D, in the pose space the network predicts (``fit3d.Fit3D``
with ``real_pose_space.FIT_SPACES["pca"]``): its PCA coefficients, betas and rotation are the
parameter labels, the nearest hand the network can express. (Projecting the 45-D fitted
axis-angles onto the PCA rows instead gives coefficients up to ~18 on the last components,
far outside the [-2, 2] the network is trained on, for hands 12 mm off at mean shape; the
keypoint-space fit keeps them near 1.6 and 6 mm off.) The keypoints the network sees and the
3D labels are the real joints themselves, so the network learns to lift real hands.

Views (``draw``): the captured camera orientation (the fit's rotation: how DexYCB's cameras saw
the hand) for a ``real_view_fraction`` of the draws, else the view the synthetic sampler drew
(``synthetic.sample_view``: uniform, or the palm or back towards the camera).

The fits are cached in ``outputs/cache`` by the hand model's hash (derived from DexYCB: never
committed).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from wildhands.data.datasets.real_poses import load_real_poses
from wildhands.data.real_pose_space import FIT_SPACES, fit_real_poses
from wildhands.fileio import atomic_path
from wildhands.hand.hand_model import HandModel
from wildhands.paths import output_dir

# The only split read: learning never sees the test subjects.
TRAINING_SPLIT = "train"


@dataclass(frozen=True, eq=False)
class RealPoseLabels:
    """Training subjects' real hands with the parameters of their fit in the network's pose space."""
    joints_model: np.ndarray   # (N, 21, 3) real joints, root-relative, turned into the model frame (R^T y), metres
    rotation: np.ndarray       # (N, 3, 3) the fit's R: model frame -> the capturing (mirrored) camera frame
    betas: np.ndarray          # (N, S) fitted shape
    pose: np.ndarray           # (N, n) fitted PCA coefficients (the network's pose parameters)
    subject: np.ndarray        # (N,) subject number, 1-8
    fit_error_m: np.ndarray    # (N,) mean keypoint distance of the fit, metres

    def __len__(self) -> int:
        return len(self.joints_model)

    def draw(self, rng, view_rotation: np.ndarray, real_view_fraction: float):
        """One real hand: (index, betas, pose, rotation, keypoints_3d), the keypoints root-relative in
        the camera frame of ``rotation`` (the captured one for a ``real_view_fraction`` of the draws,
        else ``view_rotation``)."""
        index = int(rng.integers(len(self)))
        rotation = self.rotation[index] if rng.random() < real_view_fraction else np.asarray(view_rotation)
        return index, self.betas[index], self.pose[index], rotation, self.joints_model[index] @ rotation.T


def real_pose_labels(hand_model: HandModel, path=None, cache: bool = True) -> RealPoseLabels:
    """The training subjects' real hands (``TRAINING_SPLIT``) fitted in ``hand_model``'s PCA space.

    ``path``: the DexYCB joints file (default ``datasets.real_poses.default_real_poses_path()``).
    About a minute on 2 cores for the 29k hands, then read from the cache (``cache``; keyed by the
    hand model and the joints' content)."""
    poses = load_real_poses(TRAINING_SPLIT, path)
    content = hashlib.sha1(np.ascontiguousarray(poses.joints).tobytes()).hexdigest()[:12]
    cached = output_dir("cache") / (f"real_pose_pca_fits_{hand_model.hash[:12]}_{hand_model.num_pca_comps}_"
                                    f"{TRAINING_SPLIT}_{len(poses)}_{content}.npz")
    if cache and cached.is_file():
        with np.load(cached) as data:
            fitted = {k: data[k] for k in ("rotation", "betas", "pose", "fit_error_m")}
    else:
        result = fit_real_poses(hand_model, poses.joints, "pca")
        fitted = {"rotation": result.rotation.numpy(), "betas": result.betas.numpy(), "pose": result.pose.numpy(),
                  "fit_error_m": result.mean_error.numpy()}
        if cache:
            with atomic_path(cached) as tmp, open(tmp, "wb") as f:
                np.savez(f, **fitted, settings=repr(FIT_SPACES["pca"]))
    joints_model = np.einsum("nji,nkj->nki", fitted["rotation"], poses.joints)   # R^T y per keypoint
    return RealPoseLabels(joints_model=joints_model, subject=poses.subject.copy(), **fitted)
