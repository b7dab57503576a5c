"""The convolutional encoder: a hand crop (RGB, 2D heat-maps, or both) to hand and camera parameters.

A torchvision ResNet (10, 18, 34 or 50) whose last layer regresses, per crop,

    v = (R axis-angle 3, t 2, s 1, beta B, theta P)     (paper section 6; 26 numbers for B = P = 10)

Internally the rotation is regressed as 6 numbers (two columns of R, Zhou et al. 2019:
continuous, unlike axis-angle) and the scale as s = s0 * exp(d); ``HandParameters.to_vector()``
gives the paper's 26-vector. The last layer starts near zero and its outputs are offsets from
an initial camera (R0, t0, s0), so the first forward pass gives the mean hand (beta = 0,
theta = 0) at the right size in the centre of the crop whatever the input.

t is the root keypoint's pixel in the 320 crop and s is pixels of the 320 crop per metre,
whatever the network's input size (DESIGN.md, "Conventions").

The last layer is the paper's linear one (``head = "linear"``) or, beyond the paper, an
iterative regressor (``head = "iterative"``, HMR-style iterative error feedback, Kanazawa et al.
2018): an MLP that sees the features and its current estimate and adds a correction, a few
times over; it starts at zero like the linear layer.

Input variants: ``rgb`` (3 channels, ImageNet-normalised), ``2d`` (21 heat-map channels),
``rgb+2d`` (24: RGB first), ``2d+depth`` (42: the 21 heat-maps, then each heat-map times its
keypoint's depth cue, ``samples.depth_cue``: the detector's world landmarks' z, issue 15).
ImageNet weights (``pretrained``) are "imagenet", torchvision's IMAGENET1K_V1 weights through its
weights API and torch's cache (the one download the project makes, and only when asked), or a
local state-dict file; conv1 is adapted for heat-map channels (RGB filters for image channels,
small random filters for heat-maps and depth channels).
"""
from __future__ import annotations

from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from wildhands.hand import keypoints as kp
from wildhands.hand.camera import CROP_SIZE, matrix_to_rot6d, rot6d_to_matrix
from wildhands.hand.parameters import HandParameters

VARIANTS = {"rgb": 3, "2d": kp.NUM_KEYPOINTS, "rgb+2d": 3 + kp.NUM_KEYPOINTS, "2d+depth": 2 * kp.NUM_KEYPOINTS}


def channel_layout(variant: str) -> dict:
    """conv1's input channel ranges of ``variant``: "image" (RGB), "heatmaps", then "depth" (empty where absent)."""
    check_variant(variant)
    image = 3 if "rgb" in variant else 0
    heatmaps = image + (kp.NUM_KEYPOINTS if "2d" in variant else 0)
    depth = heatmaps + (kp.NUM_KEYPOINTS if "depth" in variant else 0)
    return {"image": slice(0, image), "heatmaps": slice(image, heatmaps), "depth": slice(heatmaps, depth)}


def resnet10(weights=None, **kwargs) -> torchvision.models.ResNet:
    """A torchvision ResNet with one basic block per stage (4.9 M parameters): the small backbone
    of the shipped default checkpoint (under 10 MB in float16). No ImageNet weights exist for it."""
    if weights is not None:
        raise ValueError("resnet10 has no pretrained weights")
    return torchvision.models.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1], **kwargs)


BACKBONES = {"resnet10": resnet10, "resnet18": torchvision.models.resnet18, "resnet34": torchvision.models.resnet34,
             "resnet50": torchvision.models.resnet50}
HEADS = ("linear", "iterative")
# Std of the last layer's initial weights: small, so the first outputs are the initial camera
# and mean hand, yet non-zero so that gradients reach the backbone from the first step.
HEAD_INIT_STD = 1e-3
# Std of conv1 filters for heat-map channels when the RGB filters come from ImageNet weights.
HEATMAP_FILTER_STD = 1e-3


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {', '.join(VARIANTS)}, got {variant!r}")
    return variant


class HandEncoder(nn.Module):
    """ResNet encoder regressing ``HandParameters`` from an input crop.

    ``init_trans`` (2,) and ``init_scale`` place the mean hand in the crop on the first pass
    (see ``model.initial_camera``); ``crop_size`` is the size of the crop t and s refer to (320).
    """

    def __init__(self, variant: str = "2d", backbone: str = "resnet18", num_betas: int = 10,
                 num_pca_comps: int = 10, init_trans=(159.5, 159.5), init_scale: float = 800.0,
                 crop_size: int = CROP_SIZE, pretrained: str | Path | None = None, head: str = "linear",
                 head_iterations: int = 3, head_hidden: int = 512):
        super().__init__()
        self.variant = check_variant(variant)
        if backbone not in BACKBONES:
            raise ValueError(f"backbone: expected one of {', '.join(BACKBONES)}, got {backbone!r}")
        if init_scale <= 0:
            raise ValueError(f"init_scale: expected pixels per metre > 0, got {init_scale}")
        self.backbone_name = backbone
        self.in_channels = VARIANTS[variant]
        self.num_betas, self.num_pca_comps = int(num_betas), int(num_pca_comps)
        self.crop_size = int(crop_size)

        net = BACKBONES[backbone](weights=None)
        if pretrained:
            load_imagenet_weights(net, pretrained, backbone)
        net.conv1 = _adapt_conv1(net.conv1, self.in_channels, image_channels=3 if "rgb" in variant else 0,
                                 pretrained=bool(pretrained))
        features = net.fc.in_features
        net.fc = nn.Identity()
        self.backbone = net
        outputs = 6 + 2 + 1 + self.num_betas + self.num_pca_comps
        if head == "linear":
            self.head = nn.Linear(features, outputs)
            last = self.head
        elif head == "iterative":
            self.head = IterativeHead(features, outputs, int(head_iterations), int(head_hidden))
            last = self.head.mlp[-1]
        else:
            raise ValueError(f"model.head: expected one of {', '.join(HEADS)}, got {head!r}")
        nn.init.normal_(last.weight, std=HEAD_INIT_STD)
        nn.init.zeros_(last.bias)
        self.register_buffer("init_rot6d", matrix_to_rot6d(torch.eye(3)))
        self.register_buffer("init_trans", torch.as_tensor(init_trans, dtype=torch.float32).reshape(2))
        self.register_buffer("init_log_scale", torch.log(torch.tensor(float(init_scale))))

    def forward(self, x: torch.Tensor) -> HandParameters:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"encoder input: expected (B, {self.in_channels}, H, W) for variant "
                             f"{self.variant!r}, got {tuple(x.shape)}")
        out = self.head(self.backbone(x)).float()
        rot6d, trans, log_scale, betas, pose = out.split(
            [6, 2, 1, self.num_betas, self.num_pca_comps], dim=1)
        # Offsets in units where one step of the raw output is about a crop half-width.
        return HandParameters(
            rotation=rot6d_to_matrix(self.init_rot6d + rot6d),
            trans=self.init_trans + 0.5 * self.crop_size * trans,
            scale=torch.exp(self.init_log_scale + log_scale[:, 0]),
            betas=betas, pose=pose)


class IterativeHead(nn.Module):
    """Iterative error feedback: ``y <- y + MLP([features, y])`` ``iterations`` times from y = 0."""

    def __init__(self, features: int, outputs: int, iterations: int = 3, hidden: int = 512):
        super().__init__()
        if iterations < 1 or hidden < 1:
            raise ValueError(f"model.head_iterations and head_hidden: expected >= 1, got {iterations}, {hidden}")
        self.iterations = iterations
        self.mlp = nn.Sequential(nn.Linear(features + outputs, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, outputs))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        estimate = features.new_zeros(features.shape[0], self.mlp[-1].out_features)
        for _ in range(self.iterations):
            estimate = estimate + self.mlp(torch.cat([features, estimate], dim=1))
        return estimate


def imagenet_weights(backbone: str):
    """torchvision's ImageNet weights enum entry for ``backbone`` (IMAGENET1K_V1, as the paper's era had)."""
    if backbone not in BACKBONES or backbone == "resnet10":
        raise ValueError(f"model.pretrained = 'imagenet': torchvision has no ImageNet weights for {backbone!r} "
                         f"(resnet18, resnet34 and resnet50 have them)")
    return torchvision.models.get_model_weights(backbone).IMAGENET1K_V1


def imagenet_weights_file(backbone: str) -> Path:
    """Where torch's cache keeps ``backbone``'s ImageNet weights: ``torch.hub.get_dir()/checkpoints/<file>``."""
    url = imagenet_weights(backbone).url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def _imagenet_state_dict(backbone: str) -> dict:
    """The ImageNet state dict from torch's cache, downloaded there when missing; a clear error offline."""
    weights = imagenet_weights(backbone)
    cached = imagenet_weights_file(backbone)
    try:
        return torch.hub.load_state_dict_from_url(weights.url, model_dir=str(cached.parent), progress=True,
                                                  check_hash=True, map_location="cpu", weights_only=True)
    except (OSError, URLError, RuntimeError) as err:  # no network, a proxy, a truncated download
        raise FileNotFoundError(
            f"model.pretrained = 'imagenet': could not get torchvision's {weights} for {backbone} ({err}). "
            f"Without a network, download {weights.url} elsewhere and place it as {cached} "
            f"(the directory is torch.hub.get_dir()/checkpoints; TORCH_HOME moves it), or set "
            f"model.pretrained to a local state-dict path") from err


def load_torch_file(path: Path, missing: Exception, unreadable: Exception):
    """``torch.load`` of a local file on the CPU, tensors only; ``missing`` is raised when there is no
    such file, ``unreadable`` (with torch's reason appended) when torch cannot read it."""
    if not path.is_file():
        raise missing
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise type(unreadable)(f"{unreadable}: {err}") from err


def load_imagenet_weights(net: nn.Module, pretrained, backbone: str = "") -> None:
    """Load ImageNet weights into a torchvision ResNet: ``pretrained`` "imagenet" (torch's cache,
    downloaded when missing and online) or the path of a local state-dict file (never downloads)."""
    if str(pretrained) == "imagenet":
        source, state = f"torchvision's ImageNet weights for {backbone}", _imagenet_state_dict(backbone)
    else:
        path = Path(pretrained)
        state = load_torch_file(path, FileNotFoundError(
            f"model.pretrained: no ImageNet weights file {path} (give 'imagenet', a local torchvision ResNet "
            "state dict, or leave it empty)"), ValueError(f"model.pretrained: {path} is not a readable torch state dict"))
        source = str(path)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(f"model.pretrained: {source} does not match the backbone "
                         f"(missing {missing[:3]}..., unexpected {unexpected[:3]}...)")


def _adapt_conv1(conv: nn.Conv2d, in_channels: int, image_channels: int, pretrained: bool) -> nn.Conv2d:
    """conv1 for ``in_channels`` inputs; image channels keep the (ImageNet) RGB filters."""
    if in_channels == conv.in_channels:
        return conv
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=False)
    if pretrained:
        with torch.no_grad():
            nn.init.normal_(new.weight, std=HEATMAP_FILTER_STD)
            if image_channels:  # the 2D variant keeps no RGB filter
                new.weight[:, :image_channels] = conv.weight
    return new
