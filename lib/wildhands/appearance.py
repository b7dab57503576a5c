"""Appearance of synthetic samples: skin, lighting, backgrounds and occluders.

No licensed hand scans exist here, so skin is modelled: a tone drawn across the human range
(very light to very dark), low-frequency per-vertex variation, a lighter palm, pink nails on
the back of the fingertips, Lambert shading from a random light plus ambient light.
Backgrounds mix natural-image patches (the sample photographs that ship inside scikit-image)
with procedural textures and clutter; occluders are random shapes over the hand.
"""
from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from .render import lambert

# Skin tones (linear RGB in [0, 1]) from very light to very dark; a sample interpolates two neighbours.
SKIN_TONES = np.array([[0.97, 0.84, 0.74], [0.92, 0.73, 0.60], [0.80, 0.58, 0.44], [0.62, 0.42, 0.29],
                       [0.45, 0.29, 0.19], [0.30, 0.19, 0.13]])
NAIL_TINT = np.array([0.96, 0.78, 0.76])
NATURAL_IMAGES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                  "hubble_deep_field.jpg", "brick.png", "grass.png", "gravel.png", "camera.png", "horse.png",
                  "page.png", "coins.png")


def skin_tone(rng) -> np.ndarray:
    t = rng.uniform(0, len(SKIN_TONES) - 1)
    i = min(int(t), len(SKIN_TONES) - 2)
    tone = (1 - (t - i)) * SKIN_TONES[i] + (t - i) * SKIN_TONES[i + 1]
    return np.clip(tone * rng.normal(1.0, 0.04, 3), 0, 1)


def hand_colors(rng, vertices, normals_cam, hand_model, frame_cam) -> np.ndarray:
    """(V, 3) shaded vertex colours in [0, 1].

    ``vertices`` in the model frame (metres); ``normals_cam`` unit vertex normals in the camera
    frame; ``frame_cam`` the anatomical frame's rows (along, back, across) in the camera frame.
    """
    albedo = np.tile(skin_tone(rng), (len(vertices), 1))
    # Low-frequency variation: a few random plane waves over the surface (wavelengths 3-10 cm).
    for _ in range(3):
        k = rng.normal(size=3)
        k *= 2 * np.pi / rng.uniform(0.03, 0.10) / np.linalg.norm(k)
        albedo *= 1 + rng.uniform(0.02, 0.06) * np.sin(vertices @ k + rng.uniform(0, 2 * np.pi))[:, None]
    back = frame_cam[1]
    palm = np.clip(-(normals_cam @ back), 0, 1)[:, None]
    albedo = albedo * (1 - 0.25 * palm) + 0.25 * palm * np.clip(albedo * [1.12, 1.05, 1.05] + 0.04, 0, 1)
    tips = vertices[hand_model.fingertip_ids]
    near_tip = np.linalg.norm(vertices[:, None] - tips[None], axis=-1).min(1) < 0.011
    nail = near_tip & (normals_cam @ back > 0.45)
    albedo[nail] = 0.55 * albedo[nail] + 0.45 * NAIL_TINT
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), -rng.uniform(0.3, 1.0)])  # from the camera side
    light_color = np.clip(rng.normal(1.0, 0.06, 3), 0.8, 1.2)
    return lambert(normals_cam, np.clip(albedo, 0, 1), light, rng.uniform(0.3, 0.55), light_color)


@functools.lru_cache(maxsize=1)
def natural_images() -> tuple:
    """The sample photographs inside scikit-image's package data (no download), as RGB uint8."""
    import skimage.data
    from PIL import Image  # reads these PNGs without libpng's colour-profile warnings

    folder = Path(skimage.data.__file__).parent
    images = []
    for name in NATURAL_IMAGES:
        if (folder / name).is_file():
            with Image.open(folder / name) as image:
                images.append(np.asarray(image.convert("RGB")))
    return tuple(images)


def _procedural(rng, size: int) -> np.ndarray:
    low = rng.integers(2, 12)
    noise = rng.uniform(0, 255, (low, low, 3)).astype(np.float32)
    image = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    saturation = rng.uniform(0.15, 1.0)  # real backgrounds are rarely rainbow-coloured
    image = cv2.transform(image, saturation * np.eye(3) + (1 - saturation) / 3)
    # Grain and a brightness gradient, the same on all channels (cv2 per-pixel ops: numpy is slow on (H, W, 3)).
    fine = cv2.resize(rng.normal(0, 1, (size // 4, size // 4)).astype(np.float32), (size, size))
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    shade = rng.uniform(0, 25) * fine + rng.uniform(-60, 60) * ramp[None, :] + rng.uniform(-60, 60) * ramp[:, None]
    image += cv2.merge([shade] * 3)
    for _ in range(rng.integers(0, 12)):  # clutter
        color = tuple(float(c) for c in rng.uniform(0, 255, 3))
        p = rng.integers(0, size, 2)
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(image, tuple(int(v) for v in p), tuple(int(v) for v in p + rng.integers(10, size // 2, 2)),
                          color, -1)
        elif kind == 1:
            cv2.ellipse(image, tuple(int(v) for v in p), tuple(int(v) for v in rng.integers(5, size // 4, 2)),
                        float(rng.uniform(0, 180)), 0, 360, color, -1)
        else:
            cv2.line(image, tuple(int(v) for v in p), tuple(int(v) for v in rng.integers(0, size, 2)), color,
                     int(rng.integers(1, 8)))
    return np.clip(image, 0, 255)


def _natural(rng, size: int) -> np.ndarray:
    images = natural_images()
    image = images[rng.integers(len(images))]
    h, w = image.shape[:2]
    side = int(rng.uniform(0.3, 1.0) * min(h, w))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    patch = cv2.resize(image[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    if rng.random() < 0.5:
        patch = cv2.flip(patch, 1)
    cast = np.c_[np.diag(rng.uniform(0.6, 1.2, 3)), np.full(3, rng.uniform(-30, 30))]  # colour cast, brightness
    return np.clip(cv2.transform(patch, cast), 0, 255)


def background_image(rng, size: int) -> np.ndarray:
    """(size, size, 3) float RGB in [0, 255]: a natural-image patch, a procedural texture, or a blend."""
    choice = rng.random()
    if not natural_images():
        return _procedural(rng, size)
    if choice < 0.45:
        return _natural(rng, size)
    if choice < 0.85:
        return _procedural(rng, size)
    a = rng.uniform(0.3, 0.7)
    return a * _natural(rng, size) + (1 - a) * _procedural(rng, size)


def draw_occluders(rng, image: np.ndarray, keypoints_2d: np.ndarray) -> np.ndarray:
    """1-3 random shapes over the hand (objects held or in front of it)."""
    out = image.copy()
    extent = float(np.ptp(keypoints_2d, axis=0).max())
    for _ in range(rng.integers(1, 4)):
        centre = keypoints_2d[rng.integers(len(keypoints_2d))] + rng.normal(0, 0.1 * extent, 2)
        axes = np.maximum(rng.uniform(0.08, 0.25, 2) * extent, 3)
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.ellipse(out, tuple(int(v) for v in centre), tuple(int(v) for v in axes), float(rng.uniform(0, 180)),
                        0, 360, color, -1, cv2.LINE_AA)
        else:
            box = cv2.boxPoints(((float(centre[0]), float(centre[1])), (float(2 * axes[0]), float(2 * axes[1])),
                                 float(rng.uniform(0, 180))))
            cv2.fillConvexPoly(out, box.astype(np.int32), color, cv2.LINE_AA)
    return out
