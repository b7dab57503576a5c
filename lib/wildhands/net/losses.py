"""Training objectives: the paper's eq. 5-9 for fine-tuning, and parameter supervision for pretraining.

Fine-tuning (``reconstruction_losses``), with per-sample masks so one batch can mix samples
with 3D labels, 2D labels only, masks, or none:

    L = w2d L2D + w3d L3D + wmask Lmask + wreg Lreg          (paper: 1, 100, 100, 10)

- L2D: L1 between reprojected and labelled keypoints, in pixels of the 320 crop, mean over
  the visible coordinates of the batch (eq. 6).
- L3D: squared Euclidean distance between predicted and labelled root-relative, camera-frame
  keypoints, in units of ``l3d_unit_m`` metres (the profiles: 0.1, decimetres), mean over the
  keypoints of samples with 3D labels (eq. 7).
- Lmask: 1 - mean_i H(y_i) over the reprojected vertices y_i, H a soft mask (``soft_mask``)
  sampled bilinearly with border padding, mean over samples with masks (eq. 8).
- Lreg: mean(theta^2) + alpha_beta mean(beta^2), means over coefficients and samples (eq. 9
  with |.|^2 divided by the number of coefficients, so that the prior does not outweigh a
  mean-reduced L2D; see ``[loss]`` in the profiles).

Pretraining (``parameter_losses``) supervises the parameters and camera of synthetic samples
directly; see ``[pretrain]`` for the per-parameter weights and why.

Settings: ``LossSettings`` reads ``[loss]`` (the weights, L3D's unit, the soft mask's margin and
decay), ``ParameterWeights`` ``[pretrain]``'s per-parameter weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from wildhands.config import TableSettings
from wildhands.hand.camera import axis_angle_to_matrix
from wildhands.net.model import Reconstruction

FINETUNE_TERMS = ("l2d", "l3d", "mask", "reg")
PRETRAIN_TERMS = ("rotation", "trans", "scale", "betas", "pose")


@dataclass(frozen=True)
class LossSettings(TableSettings):
    """The ``[loss]`` table: fine-tuning's eq. 5 weights, Lreg's shape prior weight, L3D's unit (metres)
    and the soft mask H of Lmask (``soft_mask``: margin and decay, pixels at the 320 crop)."""
    TABLE = "loss"
    w2d: float
    w3d: float
    wmask: float
    wreg: float
    alpha_beta: float
    l3d_unit_m: float
    mask_margin_px: float
    mask_decay_px: float

    def weights(self) -> dict:
        """Each of ``FINETUNE_TERMS``' weight."""
        return {"l2d": self.w2d, "l3d": self.w3d, "mask": self.wmask, "reg": self.wreg}


@dataclass(frozen=True)
class ParameterWeights(TableSettings):
    """Pretraining's per-parameter weights (``[pretrain]`` w_*, ``parameter_losses``); ``w_keypoints`` > 0
    adds L3D on the decoded keypoints."""
    TABLE = "pretrain"
    w_rotation: float
    w_trans: float
    w_scale: float
    w_betas: float
    w_pose: float
    w_keypoints: float


def soft_mask(mask: np.ndarray, margin_px: float = 2.0, decay_px: float = 20.0) -> np.ndarray:
    """H for Lmask: 1 inside the hand and within ``margin_px`` of it, exp(-(d - margin) / decay) outside.

    ``mask`` (H, W) {0, 1}; d is the Euclidean distance (pixels) to the nearest hand pixel. The
    margin keeps vertices on the silhouette's edge (where a rendered mask ends) at H = 1, so a
    correctly placed hand has Lmask = 0, the term's minimum: shrinking it cannot lower the loss.
    An empty mask gives H = 0 everywhere.
    """
    import cv2

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask: expected a (H, W) array, got shape {mask.shape}")
    if decay_px <= 0 or margin_px < 0:
        raise ValueError(f"soft mask: need decay_px > 0 and margin_px >= 0, got {decay_px}, {margin_px}")
    inside = mask > 0
    if not inside.any():
        return np.zeros(mask.shape, np.float32)
    distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.exp(-np.maximum(distance - margin_px, 0.0) / decay_px).astype(np.float32)


def sample_soft_mask(soft: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """H at ``points`` (B, N, 2) pixels of ``soft`` (B, H, W): bilinear, border padding -> (B, N)."""
    height, width = soft.shape[-2:]
    scale = points.new_tensor([2.0 / (width - 1), 2.0 / (height - 1)])
    grid = (points * scale - 1.0)[:, :, None, :]  # pixel centres at integers: align_corners=True
    values = F.grid_sample(soft[:, None].to(points.dtype), grid, mode="bilinear", padding_mode="border",
                           align_corners=True)
    return values[:, 0, :, 0]


def _masked_mean(per_sample: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_sample`` over samples with weight > 0 (0 with gradient when there are none)."""
    return (per_sample * weight).sum() / weight.sum().clamp_min(1.0)


def _l3d(output: Reconstruction, batch: dict, unit_m: float) -> torch.Tensor:
    """Squared root-relative 3D keypoint error in units of ``unit_m``, mean over keypoints and 3D-labelled samples."""
    sq = ((output.keypoints_3d - batch["keypoints_3d"]) / unit_m).square().sum(-1).mean(-1)  # (B,)
    return _masked_mean(sq, batch["has_3d"])


def reconstruction_losses(output: Reconstruction, batch: dict, settings: LossSettings) -> dict:
    """Weighted fine-tuning terms and their sum ``loss`` (eq. 5); also the unweighted terms.

    ``batch`` holds tensors: ``keypoints_2d`` (B, 21, 2) pixels at 320 and ``visible`` (B, 21);
    ``keypoints_3d`` (B, 21, 3) and ``has_3d`` (B,); ``soft_mask`` (B, H, W) (see ``soft_mask``;
    H = W = 320) and ``has_mask`` (B,). ``settings``: the profile's ``[loss]``.
    """
    visible = batch["visible"].to(output.keypoints_2d.dtype)
    l1 = (output.keypoints_2d - batch["keypoints_2d"]).abs().sum(-1)          # (B, 21): |dx| + |dy|
    l2d = (l1 * visible).sum() / (2 * visible.sum()).clamp_min(1.0)

    l3d = _l3d(output, batch, settings.l3d_unit_m)

    h = sample_soft_mask(batch["soft_mask"], output.vertices_2d)
    lmask = _masked_mean(1.0 - h.mean(-1), batch["has_mask"])

    params = output.params
    lreg = (params.pose.square().mean(-1) + settings.alpha_beta * params.betas.square().mean(-1)).mean()

    raw = {"l2d": l2d, "l3d": l3d, "mask": lmask, "reg": lreg}
    return _combine(raw, settings.weights())


def parameter_losses(params, batch: dict, weights: ParameterWeights, output: Reconstruction | None = None,
                     unit_m: float | None = None) -> dict:
    """Pretraining: weighted squared errors of each predicted parameter against the synthetic truth.

    rotation: |R - R_gt|_F^2 (no axis-angle wrap-around); trans: squared pixel error / 100
    (tens of pixels); scale: (log s - log s_gt)^2; betas, pose: mean squared coefficient error.
    Means over samples with ``has_params``. ``weights``: each of PRETRAIN_TERMS' (``[pretrain]``).
    With ``w_keypoints`` > 0, the decoded ``output`` and ``unit_m`` (``[loss] l3d_unit_m``), also
    "keypoints": L3D's squared root-relative 3D keypoint error in units of ``unit_m``, over samples
    with ``has_3d``.
    """
    has = batch["has_params"]
    rotation = axis_angle_to_matrix(batch["global_orient"])
    raw = {
        "rotation": _masked_mean((params.rotation - rotation).square().sum((-1, -2)), has),
        "trans": _masked_mean((params.trans - batch["trans"]).square().sum(-1) / 100.0, has),
        "scale": _masked_mean((params.scale.log() - batch["scale"].reshape(-1).log()).square(), has),
        "betas": _masked_mean((params.betas - batch["betas"]).square().mean(-1), has),
        "pose": _masked_mean((params.pose - batch["pose"]).square().mean(-1), has),
    }
    term_weights = {name: getattr(weights, f"w_{name}") for name in PRETRAIN_TERMS}
    if weights.w_keypoints > 0:
        if output is None or unit_m is None:
            raise ValueError("parameter_losses: w_keypoints > 0 needs the decoded output and L3D's unit_m")
        raw["keypoints"] = _l3d(output, batch, unit_m)
        term_weights["keypoints"] = weights.w_keypoints
    return _combine(raw, term_weights)


def _combine(raw: dict, weights: dict) -> dict:
    out = {f"raw_{name}": value for name, value in raw.items()}
    weighted = {name: float(weights[name]) * value for name, value in raw.items()}
    out.update(weighted)
    out["loss"] = sum(weighted.values())
    return out


def keypoint_errors(output: Reconstruction, batch: dict) -> dict:
    """Per-sample mean errors: root-aligned 3D (mm, samples with 3D labels else NaN) and 2D (px at 320)."""
    err3d = (output.keypoints_3d - batch["keypoints_3d"]).norm(dim=-1).mean(-1) * 1000.0
    err3d = torch.where(batch["has_3d"] > 0, err3d, torch.full_like(err3d, float("nan")))
    visible = batch["visible"]
    err2d = ((output.keypoints_2d - batch["keypoints_2d"]).norm(dim=-1) * visible).sum(-1) \
        / visible.sum(-1).clamp_min(1.0)
    return {"mpjpe_3d_mm": err3d, "error_2d_px": err2d}

