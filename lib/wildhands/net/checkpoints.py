"""Checkpoint files: writing them atomically, resuming training from them, loading models for prediction.

A checkpoint holds the encoder's weights (the decoder has none), and for resuming the
optimiser, scheduler, AMP scaler, step and RNG states (python, numpy, torch, data order);
always the profile it was trained with, the hand model's identity (its hash and name, never
its arrays: MANO is licensed) and the code version (``wildhands.__version__`` and the git
commit when available). Loading against a different hand model is refused.

A checkpoint's recorded profile is read as the code reads any profile, strictly; settings the
profiles gained after a checkpoint was written come from ``ADDED_SETTINGS`` (``recorded_config``),
at the values the code used while profiles lacked them, so that older checkpoints (the shipped
one among them) run as they did.
"""
from __future__ import annotations

import copy
import random
import subprocess
from pathlib import Path

import numpy as np
import torch

from wildhands import __version__
from wildhands.fileio import atomic_path
from wildhands.hand.hand_model import HandModel, hand_model_from_config
from wildhands.net.encoder import HEATMAP_FILTER_STD, channel_layout, load_torch_file
from wildhands.net.model import build_model
from wildhands.paths import PROJECT_ROOT

FORMAT = "wildhands-checkpoint-1"
# Settings added to the profiles after checkpoints were first written, at the values the code used
# while a profile lacked them (the detector's own sigma rule and no body pass; no real hands in the
# sampled set; no depth input to drop): a checkpoint's recorded profile takes them where it has none.
ADDED_SETTINGS = {
    "detector": {"body": False, "sigma_rule": ""},
    "eval": {"real_photo_limit": 0},
    "model": {"depth_dropout": 0.0},
    "synthetic": {"real_pose_fraction": 0.0, "real_view_fraction": 0.0},
}


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or made for another hand model or network."""


def code_version() -> dict:
    """``{"wildhands": version, "git": commit or None}`` of the running code."""
    commit = None
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=5)
        if done.returncode == 0:
            commit = done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {"wildhands": __version__, "git": commit}


def hand_model_identity(hand_model: HandModel) -> dict:
    return {"hash": hand_model.hash, "name": hand_model.name, "path": str(hand_model.path),
            "num_betas": hand_model.num_betas, "num_pca_comps": hand_model.num_pca_comps,
            "flat_hand_mean": bool(hand_model.flat_hand_mean)}


def rng_states() -> dict:
    """Global RNG states as plain data (loadable with ``weights_only=True``)."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"] = {"key": numpy_state["state"]["key"].tolist(), "pos": int(numpy_state["state"]["pos"])}
    states = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    random.setstate(_tuples(states["python"]))
    numpy_state = dict(states["numpy"])
    numpy_state["state"] = {"key": np.asarray(numpy_state["state"]["key"], np.uint32),
                            "pos": numpy_state["state"]["pos"]}
    np.random.set_state(numpy_state)
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path, *, model, config: dict, stage: str, step: int, optimizer=None, scheduler=None,
                    scaler=None, data_state: dict | None = None, metrics: dict | None = None,
                    half: bool = False) -> Path:
    """Write a checkpoint atomically. ``half`` stores float16 weights and no training state (for shipping)."""
    encoder = model.encoder
    weights = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu()
               for k, v in encoder.state_dict().items()}
    payload = {
        "format": FORMAT,
        "stage": stage,
        "step": int(step),
        "variant": encoder.variant,
        "backbone": encoder.backbone_name,
        "config": config,
        "hand_model": hand_model_identity(model.hand_model),
        "code_version": code_version(),
        "encoder": weights,
        "metrics": metrics or {},
    }
    if not half:
        payload["training"] = {
            "optimizer": None if optimizer is None else optimizer.state_dict(),
            "scheduler": None if scheduler is None else scheduler.state_dict(),
            "scaler": None if scaler is None else scaler.state_dict(),
            "rng": rng_states(),
            "data": data_state or {},
        }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path) -> dict:
    """The checkpoint's contents (on the CPU), checked for format."""
    path = Path(path)
    payload = load_torch_file(path, CheckpointError(
        f"checkpoint {path} does not exist (train one with ./run_all.sh or `python -m wildhands train`, or pass "
        "--checkpoint)"), CheckpointError(f"checkpoint {path} is not a readable wildhands checkpoint"))
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a wildhands checkpoint (format "
                              f"{payload.get('format') if isinstance(payload, dict) else type(payload).__name__})")
    return payload


def recorded_config(payload: dict) -> dict:
    """The profile a checkpoint was trained with, with ``ADDED_SETTINGS`` where its tables lack them."""
    config = copy.deepcopy(payload["config"])
    for name, values in ADDED_SETTINGS.items():
        if isinstance(config.get(name), dict):
            config[name] = {**values, **config[name]}
    return config


def check_hand_model(payload: dict, hand_model: HandModel, path) -> None:
    """Refuse a checkpoint trained with another hand model, saying what to do."""
    want = payload["hand_model"]
    if want["hash"] != hand_model.hash:
        raise CheckpointError(
            f"checkpoint {path} was trained with hand model {want['name']!r} (hash {want['hash']}, from "
            f"{want['path']}), but the hand model here is {hand_model.name!r} (hash {hand_model.hash}, from "
            f"{hand_model.path}). Retrain with ./run_all.sh for this hand model, or pass --checkpoint with a "
            "checkpoint trained for it.")
    if (want["num_betas"], want["num_pca_comps"]) != (hand_model.num_betas, hand_model.num_pca_comps):
        raise CheckpointError(
            f"checkpoint {path} predicts {want['num_betas']} betas and {want['num_pca_comps']} pose "
            f"coefficients; the hand model here takes {hand_model.num_betas} and {hand_model.num_pca_comps}")


def load_encoder_weights(model, payload: dict, path) -> None:
    """Copy a checkpoint's encoder weights into ``model`` (same hand model and network required)."""
    check_hand_model(payload, model.hand_model, path)
    if (payload["variant"], payload["backbone"]) != (model.encoder.variant, model.encoder.backbone_name):
        raise CheckpointError(f"checkpoint {path} holds a {payload['backbone']} for input {payload['variant']!r}, "
                              f"not a {model.encoder.backbone_name} for {model.encoder.variant!r}")
    model.encoder.load_state_dict(_weights_for(model.encoder, payload))


def _weights_for(encoder, payload: dict) -> dict:
    """A checkpoint's encoder weights in ``encoder``'s dtypes (shipped checkpoints hold float16)."""
    reference = encoder.state_dict()
    return {k: v.to(reference[k].dtype) if k in reference else v for k, v in payload["encoder"].items()}


def load_encoder_weights_from_variant(model, payload: dict, path) -> None:
    """Start ``model`` from a checkpoint of another input variant (same backbone and hand model).

    Every layer but conv1 is copied. conv1's filters go to the channels of the same kind (image,
    heat-map, depth: ``encoder.channel_layout``) where both networks have them; image and heat-map
    channels the checkpoint lacks get small filters (``encoder.HEATMAP_FILTER_STD``), depth channels
    zero ones, so that at first the network answers as the checkpoint's did (from a network without
    depth, exactly: the 2d / 2d+depth comparison of issue 15 starts from the same function) and
    learns to use its new input from there.
    """
    check_hand_model(payload, model.hand_model, path)
    encoder = model.encoder
    if payload["backbone"] != encoder.backbone_name:
        raise CheckpointError(f"checkpoint {path} holds a {payload['backbone']}, not the "
                              f"{encoder.backbone_name} this run trains")
    source, target = channel_layout(payload["variant"]), channel_layout(encoder.variant)
    weights = _weights_for(encoder, payload)
    key = "backbone.conv1.weight"
    conv1 = torch.empty_like(encoder.state_dict()[key]).normal_(std=HEATMAP_FILTER_STD)
    conv1[:, target["depth"]] = 0.0
    for part, into in target.items():
        taken = source[part]
        if into.stop > into.start and taken.stop > taken.start:
            conv1[:, into] = weights[key][:, taken]
    weights[key] = conv1
    encoder.load_state_dict(weights)


def load_model(checkpoint_path, hand_model: HandModel | None = None, device="cpu"):
    """``(model, config)``: the trained ``HandReconstructor`` of a checkpoint, in eval mode.

    ``hand_model``: the hand model to decode with; None builds the one the checkpoint's profile
    names. Either way it must be the model the checkpoint was trained with.
    """
    payload = read_checkpoint(checkpoint_path)
    config = recorded_config(payload)
    if hand_model is None:
        hand_model = hand_model_from_config(config)
    check_hand_model(payload, hand_model, checkpoint_path)
    # The checkpoint's weights replace any ImageNet initialisation: never load (or download) it here.
    model = build_model({**config, "model": {**config["model"], "pretrained": ""}}, hand_model,
                        variant=payload["variant"])
    load_encoder_weights(model, payload, checkpoint_path)
    return model.to(device).eval(), config


def export_checkpoint(source, destination, half: bool = True) -> Path:
    """An inference-only copy of a checkpoint: no training state, float16 weights when ``half``.

    What ships in params/ (a resnet10 2D-variant encoder is under 10 MB in float16).
    """
    payload = read_checkpoint(source)
    payload.pop("training", None)
    if half:
        payload["encoder"] = {k: v.half() if v.is_floating_point() else v for k, v in payload["encoder"].items()}
    with atomic_path(destination) as tmp:
        torch.save(payload, tmp)
    return Path(destination)
