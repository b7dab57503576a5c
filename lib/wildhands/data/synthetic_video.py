"""Synthetic videos with known truth: one hand moving smoothly over a background.

Owns the hand's trajectories and their rendering, frame by frame, with the synthetic set's
parts (``data.synthetic``: the hand's shape, starting pose and view drawn as for a training
sample; ``data.appearance``: skin colours, lighting and backgrounds; ``data.render``: the
rasterizer). The shape is one for the video; the pose (PCA coefficients), the rotation (an
oscillating turn about the starting view), the translation (a Lissajous path across the image)
and the scale (a slow zoom) are sums of sinusoids of 0.1-0.8 Hz: smooth, with accelerations
like a hand's. ``static=True`` holds every parameter at its first value. A left hand is the
right one rendered and mirrored with the whole frame (x' = W - 1 - x, 3D x negated).
``detector_like_keypoints`` adds the measured detector noise to the true keypoints, per frame.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from wildhands.data.appearance import background_image, hand_colors
from wildhands.data.augment import DetectorNoise, detector_keypoints
from wildhands.data.crops import hand_transform
from wildhands.data.render import render, vertex_normals
from wildhands.data.synthetic import HandAssets, SyntheticSettings, sample_parameters
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import rotation_about
from wildhands.hand.hand_model import HandModel


@dataclass
class SyntheticVideo:
    """Frames and their truth (camera frame: x right, y down, z away; metres)."""
    frames: np.ndarray          # (T, H, W, 3) uint8 RGB
    keypoints_2d: np.ndarray    # (T, 21, 2) image pixels
    keypoints_3d: np.ndarray    # (T, 21, 3) root-relative, camera frame (mirrored for a left hand)
    betas: np.ndarray           # (S,)
    pose: np.ndarray            # (T, n) PCA coefficients (of the right hand rendered)
    rotation: np.ndarray        # (T, 3, 3) model -> camera (of the right hand rendered)
    scale: np.ndarray           # (T,) px per metre
    trans: np.ndarray           # (T, 2) root keypoint pixel (of the right hand rendered)
    side: str
    fps: float


def _waves(rng, frames: int, fps: float, count: int, amplitude, low_hz: float = 0.1, high_hz: float = 0.8):
    """(T, count) sums of two sinusoids per column, each of the given amplitude, starting at 0."""
    t = np.arange(frames)[:, None] / fps
    out = np.zeros((frames, count))
    for _ in range(2):
        freq = rng.uniform(low_hz, high_hz, count)
        phase = rng.uniform(0, 2 * np.pi, count)
        out += np.asarray(amplitude) * (np.sin(2 * np.pi * freq * t + phase) - np.sin(phase))
    return out


def hand_trajectory(hand_model: HandModel, config: dict, rng, frames: int, fps: float, width: int,
                    height: int, static: bool = False) -> dict:
    """Per-frame parameters: betas (S,), pose (T, n), rotation (T, 3, 3), scale (T,), trans (T, 2)."""
    assets = HandAssets.of(hand_model)
    base = sample_parameters(rng, replace(SyntheticSettings.from_config(config), view_uniform_fraction=0.0),
                             assets.frame, hand_model.num_betas, hand_model.num_pca_comps)
    hold = 0.0 if static else 1.0
    pose = 0.5 * base.pose + hold * _waves(rng, frames, fps, hand_model.num_pca_comps, 0.6)
    turns = hold * _waves(rng, frames, fps, 3, 0.25, 0.1, 0.5)
    rotation = np.stack([rotation_about(w / max(np.linalg.norm(w), 1e-12), np.linalg.norm(w)) @ base.rotation
                         for w in turns])
    edge_px = 0.45 * min(width, height)
    zoom = np.exp(hold * _waves(rng, frames, fps, 1, 0.08, 0.1, 0.3)[:, 0])
    centre = np.array([(width - 1) / 2, (height - 1) / 2]) + hold * _waves(
        rng, frames, fps, 2, [0.08 * width, 0.06 * height], 0.1, 0.4)
    return {"betas": base.betas, "pose": pose, "rotation": rotation, "edge_px": edge_px * zoom, "centre": centre}


def render_video(hand_model: HandModel, config: dict, frames: int = 90, fps: float = 30.0, width: int = 320,
                 height: int = 240, seed: int = 0, side: str = "right", static: bool = False) -> SyntheticVideo:
    """A video of one hand (``side``) moving over a still background, and its truth."""
    if side not in ("left", "right") or frames < 1 or width < 16 or height < 16:
        raise ValueError(f"render_video: side left/right, frames >= 1, sides >= 16; got {side!r}, {frames}, "
                         f"{width}x{height}")
    rng = np.random.default_rng([int(seed), 18])
    path = hand_trajectory(hand_model, config, rng, frames, fps, width, height, static)
    with torch.no_grad():
        out = hand_model(betas=torch.as_tensor(np.repeat(path["betas"][None], frames, 0), dtype=hand_model.dtype),
                         pose=torch.as_tensor(path["pose"], dtype=hand_model.dtype))
    verts, keys = out.vertices.double().numpy(), out.keypoints.double().numpy()
    root = keys[:, kp.ROOT:kp.ROOT + 1]
    verts_cam = np.einsum("tij,tvj->tvi", path["rotation"], verts - root)
    keys_cam = np.einsum("tij,tvj->tvi", path["rotation"], keys - root)
    extent = np.ptp(keys_cam[0, :, :2], axis=0).max()
    scale = path["edge_px"] / extent
    box_mid = (keys_cam[..., :2].max(1) + keys_cam[..., :2].min(1)) / 2
    trans = path["centre"] - scale[:, None] * box_mid
    side_px = max(width, height)
    background = background_image(rng, side_px)[:height, :width]
    colour_seed = int(rng.integers(2**31))
    assets = HandAssets.of(hand_model)
    images = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        images[t] = _render_frame(hand_model, assets, verts[t], verts_cam[t], path["rotation"][t], scale[t],
                                  trans[t], background, colour_seed)
    keys_2d = scale[:, None, None] * keys_cam[..., :2] + trans[:, None]
    if side == "left":
        images = images[:, :, ::-1].copy()
        keys_2d = keys_2d.copy()
        keys_2d[..., 0] = width - 1 - keys_2d[..., 0]
        keys_cam = keys_cam * [-1.0, 1.0, 1.0]
    return SyntheticVideo(images, keys_2d, keys_cam, path["betas"], path["pose"], path["rotation"], scale, trans,
                          side, float(fps))


def _render_frame(hand_model: HandModel, assets: HandAssets, verts, verts_cam, rotation, scale, trans, background,
                  colour_seed: int) -> np.ndarray:
    """One frame: the shaded hand (same skin and light every frame) over the background."""
    import cv2

    height, width = background.shape[:2]
    normals_cam = vertex_normals(verts, hand_model.faces) @ rotation.T
    colours = hand_colors(np.random.default_rng(colour_seed), verts, normals_cam, assets.regions)
    hand = render(scale * verts_cam[:, :2] + trans, verts_cam[:, 2], hand_model.faces, colours, width, height,
                  cull_backfaces=assets.cull_backfaces)
    rgb = (background + 0.5).astype(np.uint8)
    rgb[hand.mask > 0] = (hand.color[hand.mask > 0] * 255 + 0.5).astype(np.uint8)
    return cv2.GaussianBlur(rgb, (3, 3), 0.6)


def detector_like_keypoints(keypoints_2d: np.ndarray, image_shape, config: dict, seed: int = 0) -> np.ndarray:
    """(T, 21, 2) image keypoints as a detector run on each frame alone might give them: the
    profile's measured noise (``data.augment.detector_keypoints``, ``[noise]``, the clean draw
    off) applied in each frame's 2.2 l crop at 320 px, independently per frame."""
    noise = DetectorNoise.from_config(config)
    noise.clean_probability = 0.0
    out = np.empty_like(np.asarray(keypoints_2d, np.float64))
    for t, keys in enumerate(np.asarray(keypoints_2d, np.float64)):
        crop = hand_transform(image_shape, keys)
        rng = np.random.default_rng([int(seed), 18, t])
        out[t] = crop.to_image(detector_keypoints(crop.to_crop(keys), rng, noise).astype(np.float64))
    return out
