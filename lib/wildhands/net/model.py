"""The whole network: encoder + fixed model-based decoder (hand model and weak-perspective camera).

``HandReconstructor(x)`` returns a ``Reconstruction``: the predicted parameters, the mesh and
the 21 keypoints in the camera frame relative to the root keypoint (metres), and their
reprojections in pixels of the 320 crop (x right, y down):

    x = s * Pi(R (P - P_root)) + t        (paper eq. 3-4; ``camera.weak_perspective_project``)

The decoder has no trainable parameters. The hand model is a non-persistent part: its arrays
(MANO is licensed) never enter ``state_dict()``; checkpoints store its hash instead.

Beyond the paper, ``HandReconstructor.predict(x, quarter_turns)`` averages the encoder over
quarter turns of its input (test-time augmentation; ``[inference]`` in the profiles).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wildhands.config import TableSettings, setting
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import CROP_SCALE, CROP_SIZE, frame_in_crop, rotate_root_relative, weak_perspective_project
from wildhands.hand.hand_model import HandModel
from wildhands.hand.keypoint_model import KeypointModel
from wildhands.hand.parameters import PARAMETER_FIELDS, HandParameters
from wildhands.net.encoder import HandEncoder

HAND_MODEL_PREFIX = "hand_model."


@dataclass
class Reconstruction:
    """Network output for a batch of crops."""
    params: HandParameters
    vertices: torch.Tensor       # (B, V, 3) metres, camera frame, root-relative
    keypoints_3d: torch.Tensor   # (B, 21, 3) metres, camera frame, root-relative
    keypoints_2d: torch.Tensor   # (B, 21, 2) pixels of the 320 crop
    vertices_2d: torch.Tensor    # (B, V, 2) pixels of the 320 crop


class HandDecoder(nn.Module):
    """Hand model + weak-perspective reprojection; no trainable parameters."""

    def __init__(self, hand_model: HandModel):
        super().__init__()
        self.hand_model = hand_model
        self._keypoint_models = {}  # (device, dtype) -> fitting.KeypointModel; a cache, not a submodule

    def forward(self, params: HandParameters) -> Reconstruction:
        # The rotation is applied by the camera, about the root keypoint, as in eq. 3-4; the hand
        # model poses the hand in its own frame (global_orient = 0).
        hand = self.hand_model(betas=params.betas, pose=params.pose)
        return _seen_by_camera(params, hand.keypoints, hand.vertices)

    def keypoints_only(self, params: HandParameters) -> Reconstruction:
        """The keypoints without skinning the mesh (``vertices`` and ``vertices_2d`` are None), the
        same numbers as ``forward`` gives to float precision at a fraction of the cost: what
        parameter-supervised pretraining logs and its optional L3D term needs."""
        betas = params.betas
        key = (betas.device, betas.dtype)
        if key not in self._keypoint_models:
            self._keypoint_models[key] = KeypointModel(self.hand_model, betas.dtype).to(betas.device)
        return _seen_by_camera(params, self._keypoint_models[key](betas, params.pose.to(betas.dtype)))


def _seen_by_camera(params: HandParameters, keypoints: torch.Tensor, vertices: torch.Tensor | None = None
                    ) -> Reconstruction:
    """Model-frame keypoints (and vertices) rotated about the root keypoint and reprojected."""
    root = keypoints[:, kp.ROOT]
    rotation, scale, trans = params.rotation, params.scale, params.trans
    return Reconstruction(
        params=params,
        vertices=None if vertices is None else rotate_root_relative(vertices, rotation, root),
        keypoints_3d=rotate_root_relative(keypoints, rotation, root),
        keypoints_2d=weak_perspective_project(keypoints, rotation, scale, trans, root),
        vertices_2d=None if vertices is None else weak_perspective_project(vertices, rotation, scale, trans, root),
    )


class HandReconstructor(nn.Module):
    """Encoder + decoder. Only the encoder is trained (and wrapped by DDP)."""

    def __init__(self, encoder: HandEncoder, hand_model: HandModel):
        super().__init__()
        if (encoder.num_betas, encoder.num_pca_comps) != (hand_model.num_betas, hand_model.num_pca_comps):
            raise ValueError(f"encoder predicts {encoder.num_betas} betas and {encoder.num_pca_comps} pose "
                             f"coefficients, the hand model takes {hand_model.num_betas} and "
                             f"{hand_model.num_pca_comps}")
        self.encoder = encoder
        self.decoder = HandDecoder(hand_model)
        self.register_state_dict_post_hook(_drop_hand_model_state)
        self.register_load_state_dict_pre_hook(_keep_hand_model_state)

    @property
    def hand_model(self) -> HandModel:
        return self.decoder.hand_model

    @property
    def variant(self) -> str:
        return self.encoder.variant

    def forward(self, x: torch.Tensor) -> Reconstruction:
        return self.decoder(self.encoder(x))

    def predict(self, x: torch.Tensor, quarter_turns: int = 1) -> Reconstruction:
        """``forward`` averaged over ``quarter_turns`` (1, 2 or 4) evenly spaced quarter turns of ``x``."""
        return self.decoder(turned_average(self.encoder, x, quarter_turns))


QUARTER_TURNS = (1, 2, 4)


def turn_parameters(params: HandParameters, turns: int, crop_size: int = CROP_SIZE) -> HandParameters:
    """The parameters of the scene turned as ``torch.rot90(x, turns, dims=(2, 3))`` turns a crop.

    rot90 moves the pixel (u, v) to (v, W - 1 - u): about the crop centre c, (x, y) -> (y, -x).
    The camera rotation gains that turn about the optical axis (R -> Rz R, det Rz = 1), the
    root pixel t turns about c, and s, betas and pose stay as they are.
    """
    turn = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=params.trans.dtype, device=params.trans.device)
    turn = torch.linalg.matrix_power(turn, int(turns) % 4)
    turn_3d = torch.eye(3, dtype=params.rotation.dtype, device=params.rotation.device)
    turn_3d[:2, :2] = turn.to(params.rotation.dtype)
    centre = (crop_size - 1) / 2
    return HandParameters(rotation=turn_3d @ params.rotation, trans=(params.trans - centre) @ turn.T + centre,
                          scale=params.scale, betas=params.betas, pose=params.pose)


def turned_average(encoder: HandEncoder, x: torch.Tensor, quarter_turns: int = 1) -> HandParameters:
    """Test-time augmentation: ``encoder``'s parameters averaged over evenly spaced quarter turns.

    Each turned copy of ``x`` is encoded and its parameters turned back. Per hand, a view takes
    part only when its rotation is within 90 degrees of the unturned view's (a network that has
    not learnt to turn with its input, such as an untrained one, keeps its plain prediction).
    Rotations are averaged as the rotation nearest (Frobenius) to their mean matrix, the other
    parameters arithmetically. Heat-maps turn exactly with their keypoints (pixel centres are
    symmetric about the crop centre).
    """
    if quarter_turns not in QUARTER_TURNS:
        raise ValueError(f"quarter_turns: expected one of {QUARTER_TURNS}, got {quarter_turns!r}")
    if quarter_turns == 1:
        return encoder(x)
    turns = range(0, 4, 4 // quarter_turns)
    # One pass over all views (batch-norm in eval mode treats samples independently).
    together = encoder(torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in turns]))
    per_view = zip(*(getattr(together, name).chunk(len(turns)) for name in PARAMETER_FIELDS))
    views = [turn_parameters(HandParameters(*parts), -k, encoder.crop_size) for k, parts in zip(turns, per_view)]
    rotations = torch.stack([v.rotation for v in views])                      # (K, B, 3, 3)
    # trace(R0^T Rk) = 1 + 2 cos(angle between them): > 1 within 90 degrees.
    agree = (rotations * rotations[:1]).sum((-2, -1)) > 1.0                   # (K, B)
    weight = agree.to(rotations.dtype) / agree.sum(0)

    def mean(stacked):
        return (weight.reshape(*weight.shape, *[1] * (stacked.ndim - 2)) * stacked).sum(0)

    u, _, vh = torch.linalg.svd(mean(rotations))
    flip = torch.ones(u.shape[:-1], dtype=u.dtype, device=u.device)
    flip[:, -1] = torch.det(u @ vh).sign()
    return HandParameters(rotation=u @ torch.diag_embed(flip) @ vh,
                          **{name: mean(torch.stack([getattr(v, name) for v in views]))
                             for name in PARAMETER_FIELDS if name != "rotation"})


def _drop_hand_model_state(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(prefix + "decoder." + HAND_MODEL_PREFIX)]:
        del state_dict[key]


def _keep_hand_model_state(module, state_dict, prefix, *args):
    # Loading a state dict without the hand model must leave the hand model as it is.
    for name, tensor in module.decoder.hand_model.state_dict().items():
        state_dict.setdefault(prefix + "decoder." + HAND_MODEL_PREFIX + name, tensor)


def initial_camera(hand_model: HandModel, crop_size: int = CROP_SIZE,
                   crop_scale: float = CROP_SCALE) -> tuple[tuple, float]:
    """Camera (t0, s0) that shows the mean hand (identity rotation) as a 2.2 l crop does.

    s0 makes the tightest square box around the mean hand's keypoints ``crop_size / crop_scale``
    pixels wide; t0 puts that box's centre at the crop centre (``camera.frame_in_crop``).
    Returns ((tx, ty), s0).
    """
    with torch.no_grad():
        keypoints = hand_model().keypoints[0].double().numpy()
    scale, trans = frame_in_crop(keypoints - keypoints[kp.ROOT], crop_size, crop_scale)
    return (float(trans[0]), float(trans[1])), scale


@dataclass(frozen=True)
class ModelSettings(TableSettings):
    """The ``[model]`` table's network (``build_model``): input variant, backbone, ImageNet
    initialisation ("": none) and last layer (linear | iterative, its corrections and MLP width).
    The input size is ``samples.InputSettings``'."""
    TABLE = "model"
    variant: str
    backbone: str
    pretrained: str
    head: str
    head_iterations: int
    head_hidden: int


def build_model(config: dict, hand_model: HandModel, variant: str | None = None) -> HandReconstructor:
    """The ``HandReconstructor`` a profile's ``[model]`` table describes (``ModelSettings``; the crop
    from ``[preprocess]`` crop_size and crop_scale), for ``hand_model``."""
    settings = ModelSettings.from_config(config)
    crop_size = int(setting(config, "preprocess", "crop_size"))
    crop_scale = float(setting(config, "preprocess", "crop_scale"))
    trans, scale = initial_camera(hand_model, crop_size, crop_scale)
    encoder = HandEncoder(variant or settings.variant, settings.backbone, num_betas=hand_model.num_betas,
                          num_pca_comps=hand_model.num_pca_comps, init_trans=trans, init_scale=scale,
                          crop_size=crop_size, pretrained=settings.pretrained or None, head=settings.head,
                          head_iterations=settings.head_iterations, head_hidden=settings.head_hidden)
    return HandReconstructor(encoder, hand_model)
