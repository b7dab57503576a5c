"""The paper's real-data evaluation (sec. 8, figures 4-8, tables 1-4): trained variants and the
2D-fit baseline on STB test, DEXTER+OBJECT, EGODEXTER and MPII+NZSL test.

Each set keeps its own protocol (``PROTOCOLS``):

- STB (``stereo``): 1.5 l crops; 3D error after aligning the palm centre, the set's root (the
  hand model's palm keypoint replaces the predicted wrist in slot 0);
- DEXTER+OBJECT and EGODEXTER: fingertips only, after aligning the fingertips' centroids
  (``metrics.evaluate_3d(..., alignments=("fingertips",))``);
- MPII+NZSL test: 2D error of the reprojected keypoints in pixels of the 320 crop.

The networks' 2D input (heat-maps for the 2D variants) and the 2D fit's targets are the labels'
2D keypoints, and crops are taken around them. The paper fed OpenPose detections instead; a
detector (``wildhands.data.detector``, MediaPipe) would take the labels' place here, scored against
the labels in the same crop (not wired yet). On the fingertip-only sets the labels give five
keypoints, so the 2D inputs hold five heat-maps and the crop is drawn around the tips: expect
lower accuracy than with a detector's 21 keypoints. Hands with no labelled keypoint inside the
image cannot be cropped and are left out (``num_samples`` of each summary counts the rest).
Predictions of left hands are made on the mirrored crop and scored against mirrored labels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data.dataloader import default_collate

from wildhands.data.augment import resize_image
from wildhands.data.datasets import JointHandDataset, load_dataset
from wildhands.eval import metrics
from wildhands.eval.paper_reference import label, set_key
from wildhands.fit.fit2d import FitSettings, fit_keypoints_2d
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import mirror_points_3d, rotate_root_relative
from wildhands.hand.hand_model import HandModel
from wildhands.net.checkpoints import load_model
from wildhands.net.inference import inference_quarter_turns
from wildhands.net.samples import InputSettings, network_input

FIT_METHOD = "2dfit"
FIT_CHUNK = 256  # hands per batched 2D fit


@dataclass(frozen=True)
class Protocol:
    """How one evaluation set is scored."""
    split: str
    kind: str                          # "3d" (mm) or "2d" (px of the crop)
    crop_scale: float | None = None    # None: the profile's
    alignment: str = "root"            # metrics.evaluate_3d alignment for "3d" sets
    palm_root: bool = False            # keypoint 0 is the palm centre (STB)


PROTOCOLS = {
    "stb": Protocol("test", "3d", crop_scale=1.5, alignment="root", palm_root=True),
    "dexter_object": Protocol("test", "3d", alignment="fingertips"),
    "egodexter": Protocol("test", "3d", alignment="fingertips"),
    "mpii_nzsl": Protocol("test", "2d"),
}


@dataclass
class Predictions:
    """Per-hand outputs of one method: 3D (metres, camera frame, root-relative) and 2D (crop px)."""
    keypoints_3d: np.ndarray   # (N, 21, 3); slot 0 holds the palm centre where the protocol says so
    keypoints_2d: np.ndarray   # (N, 21, 2)


def evaluate_sets(config: dict, paths: dict, checkpoints: dict, hand_model: HandModel,
                  batch_size: int = 32) -> dict:
    """``{set: {method label: metrics summary}}`` for the evaluation sets among ``paths``.

    ``paths``: {set name (``PROTOCOLS`` keys, as in the profile's ``[data]``): folder}; sets
    without a path, or not evaluated by the paper, are skipped. ``checkpoints``: {variant: path
    of a trained checkpoint}; each is labelled by the variant it records. Sets are keyed by the
    paper's names (``stereo``, ...), methods by its legend labels ("Ours RGB", "Ours 2D",
    "Ours RGB+2D", "2D fit"); each value is the ``metrics`` summary of the set's protocol (mm or
    px), as ``plots.pck_comparison_figure`` and ``paper_reference.comparison_rows`` take it.
    """
    chosen = {name: root for name, root in paths.items()
              if name in PROTOCOLS and root is not None and str(root).strip()}
    models = [load_model(path, hand_model) for path in checkpoints.values()]
    settings = metrics.EvalSettings.from_config(config)
    out = {}
    for name, root in chosen.items():
        protocol = PROTOCOLS[name]
        records = [r for r in load_dataset(name, root, protocol.split) if r.visible.any()]
        if not records:
            raise ValueError(f"{name}: no hand of split {protocol.split!r} under {root} has a visible keypoint")
        dataset = JointHandDataset.from_config(config, records, crop_scale=protocol.crop_scale, grabcut="none")
        labels = _labels(dataset)
        per_method = {}
        for model, model_config in models:
            pred = predict_network(model, model_config, dataset, protocol.palm_root, batch_size)
            per_method[label(model.variant)] = score(pred, labels, protocol, settings)
        pred = predict_fit2d(hand_model, labels, protocol.palm_root, config)
        per_method[label(FIT_METHOD)] = score(pred, labels, protocol, settings)
        out[set_key(name)] = per_method
    return out


# ----------------------------------------------------------------------------- labels and scores

def _labels(dataset: JointHandDataset) -> dict:
    """Labels in the frame the network sees: crop pixels, and 3D mirrored for left hands."""
    points_2d, visible = [], []
    for i in range(len(dataset)):
        sample = dataset[i]
        points_2d.append(sample["keypoints_2d"])
        visible.append(sample["visible"])
    records = dataset.records
    points_3d = [np.full((kp.NUM_KEYPOINTS, 3), np.nan) if r.keypoints_3d is None else
                 (mirror_points_3d(r.keypoints_3d) if r.is_left else r.keypoints_3d) for r in records]
    return {"keypoints_2d": np.stack(points_2d).astype(np.float64), "visible": np.stack(visible) > 0,
            "keypoints_3d": np.stack(points_3d), "scored": np.stack([r.scored for r in records]) > 0}


def score(pred: Predictions, labels: dict, protocol: Protocol, settings: metrics.EvalSettings) -> dict:
    """The protocol's metrics summary of ``pred`` against ``labels`` (``_labels``), with the ``[eval]``
    thresholds, AUC ranges and averaging of ``settings``."""
    if protocol.kind == "2d":
        valid = labels["visible"] & labels["scored"]
        return metrics.evaluate_2d(pred.keypoints_2d, labels["keypoints_2d"], valid, **settings.arguments_2d())
    valid = labels["scored"] & np.isfinite(labels["keypoints_3d"]).all(-1)
    summaries = metrics.evaluate_3d(pred.keypoints_3d, labels["keypoints_3d"], valid,
                                    alignments=(protocol.alignment,), **settings.arguments_3d())
    return summaries[protocol.alignment]


# ----------------------------------------------------------------------------- methods

def input_confidence(visible: np.ndarray, palm_root: bool) -> np.ndarray:
    """Which label keypoints feed the 2D inputs: the visible ones, less keypoint 0 where it is the
    palm centre (the networks and the fit place a wrist there)."""
    confidence = np.asarray(visible, np.float32).copy()
    if palm_root:
        confidence[..., kp.ROOT] = 0.0
    return confidence


def _palm_relative(hand_model: HandModel, rotation: torch.Tensor, betas: torch.Tensor,
                   pose: torch.Tensor) -> torch.Tensor:
    """(B, 3) the hand model's palm centre, rotated like the keypoints about the wrist (metres)."""
    hand = hand_model(betas=betas, pose=pose)
    return rotate_root_relative(hand.palm[:, None], rotation, hand.keypoints[:, kp.ROOT])[:, 0]


@torch.no_grad()
def predict_network(model, model_config: dict, dataset: JointHandDataset, palm_root: bool = False,
                    batch_size: int = 32) -> Predictions:
    """Run a trained ``HandReconstructor`` (and the config it was trained with, as
    ``checkpoints.load_model`` returns them) over ``dataset``, with the labels' 2D keypoints as
    its 2D input; unlabelled keypoints get empty heat-maps."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    inputs = InputSettings.from_config(model_config)
    input_size, sigma = inputs.input_size, inputs.heatmap_sigma
    loader = DataLoader(_NetworkSamples(dataset, input_size, "rgb" in model.variant, palm_root),
                        batch_size=batch_size, collate_fn=default_collate)
    points_3d, points_2d = [], []
    for batch in tqdm(loader, desc=f"{model.variant} on {dataset.records[0].dataset}", leave=False,
                      disable=len(loader) < 10):
        x = network_input(model.variant, input_size, sigma,
                          images=batch["image"].to(device) if "image" in batch else None,
                          keypoints_2d=batch["keypoints_2d"].to(device), confidence=batch["visible"].to(device),
                          crop_size=dataset.crop_size)
        pred = model.predict(x, inference_quarter_turns(model_config))
        joints = pred.keypoints_3d
        if palm_root:
            p = pred.params
            joints = joints.clone()
            joints[:, kp.ROOT] = _palm_relative(model.hand_model, p.rotation, p.betas, p.pose)
        points_3d.append(joints.double().cpu().numpy())
        points_2d.append(pred.keypoints_2d.double().cpu().numpy())
    return Predictions(np.concatenate(points_3d), np.concatenate(points_2d))


class _NetworkSamples(torch.utils.data.Dataset):
    """The crops and 2D labels of a ``JointHandDataset``, resized to the network's input."""

    def __init__(self, dataset: JointHandDataset, input_size: int, with_image: bool, palm_root: bool):
        self.dataset, self.input_size, self.with_image = dataset, int(input_size), with_image
        self.palm_root = palm_root

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        sample = self.dataset[index]
        out = {"keypoints_2d": sample["keypoints_2d"], "visible": input_confidence(sample["visible"], self.palm_root)}
        if self.with_image:
            out["image"] = resize_image(sample["image"], self.input_size)
        return out


def predict_fit2d(hand_model: HandModel, labels: dict, palm_root: bool, config: dict) -> Predictions:
    """The 2D-fit baseline (eq. 10) on the labels' visible 2D keypoints, in chunks."""
    points_3d, points_2d = [], []
    targets = torch.as_tensor(labels["keypoints_2d"])
    confidence = torch.as_tensor(input_confidence(labels["visible"], palm_root), dtype=targets.dtype)
    settings = FitSettings.from_config(config)
    for start in range(0, len(targets), FIT_CHUNK):
        chunk = slice(start, start + FIT_CHUNK)
        fit = fit_keypoints_2d(hand_model, targets[chunk], settings, confidence[chunk])
        joints = fit.keypoints_3d
        if palm_root:
            if fit.pose_space != "pca":
                raise ValueError("[fit2d] pose_space: the STB palm keypoint needs the 'pca' pose space, "
                                 f"got {fit.pose_space!r}")
            joints = joints.clone()
            with torch.no_grad():
                dtype = hand_model.palm_weights.dtype
                joints[:, kp.ROOT] = _palm_relative(hand_model, fit.rotation.to(dtype), fit.betas.to(dtype),
                                                    fit.pose.to(dtype)).to(joints.dtype)
        points_3d.append(joints.detach().double().cpu().numpy())
        points_2d.append(fit.keypoints_2d.detach().double().cpu().numpy())
    return Predictions(np.concatenate(points_3d), np.concatenate(points_2d))
