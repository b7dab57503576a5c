"""Appearance of synthetic samples: skin, lighting, backgrounds and occluders.

No licensed hand scans exist here, so skin is modelled: a tone drawn across the human range
(very light to very dark, Fitzpatrick-like), low-frequency per-vertex variation, a lighter
palm side, nails on the back of the fingertips and darker creases over the finger joints
(regions found once per hand model on its rest mesh, ``skin_regions``, so they follow the
skin when the hand is posed), Lambert shading from a random light plus ambient light and a
soft Blinn-Phong highlight. Backgrounds mix natural-image patches (the sample photographs
that ship inside scikit-image) with procedural textures and clutter; occluders are random
shapes, flat or textured, over the hand, returned with their pixel mask.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from wildhands.data.render import lambert, vertex_normals
from wildhands.hand import keypoints as kp

# Skin tones (linear RGB in [0, 1]) from very light to very dark; a sample interpolates two neighbours.
SKIN_TONES = np.array([[0.97, 0.84, 0.74], [0.92, 0.73, 0.60], [0.80, 0.58, 0.44], [0.62, 0.42, 0.29],
                       [0.45, 0.29, 0.19], [0.30, 0.19, 0.13]])
PALM_TONE = np.array([0.93, 0.72, 0.62])   # palms carry little melanin: dark hands have much lighter palms
NAIL_TINT = np.array([0.96, 0.78, 0.76])
NATURAL_IMAGES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                  "hubble_deep_field.jpg", "brick.png", "grass.png", "gravel.png", "camera.png", "horse.png",
                  "page.png", "coins.png")
# Digits' joints with a crease: (joint, the keypoint the bone from it leads to).
CREASE_JOINTS = tuple((k, k + 1) for f in kp.FINGERS for k in kp.FINGER_KEYPOINTS[f][1 if f == "thumb" else 0:-1])
CREASE_WIDTH_M = 0.002   # Gaussian sigma of a crease along the finger


@dataclass(frozen=True)
class SkinRegions:
    """Per-vertex weights in [0, 1] of a hand model's skin regions (rest mesh, vertex order)."""
    palmar: np.ndarray   # palm side of the hand and the digits
    nail: np.ndarray     # nail plates on the back of the distal phalanges
    crease: np.ndarray   # flexion creases and knuckle wrinkles over the digit joints


def _smoothstep(low: float, high: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - low) / (high - low), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def skin_regions(vertices: np.ndarray, faces: np.ndarray, keypoints: np.ndarray, frame: np.ndarray) -> SkinRegions:
    """Skin regions of a rest (unposed) hand mesh in its model frame (metres).

    ``keypoints`` (21, 3) OpenPose order; ``frame`` the anatomical frame's rows (along the hand,
    out of its back, across towards the pinky; ``synthetic.anatomical_frame``). Each vertex
    belongs to its nearest bone; a digit's nail side is the back of the hand, for the thumb the
    back turned half-way towards its radial side, where a relaxed thumb's nail faces.
    """
    vertices = np.asarray(vertices, np.float64)
    keypoints = np.asarray(keypoints, np.float64)
    normals = vertex_normals(vertices, faces)
    parents, children = np.array(kp.BONES).T
    start, axis = keypoints[parents], keypoints[children] - keypoints[parents]
    length2 = (axis ** 2).sum(1)
    t = np.einsum("vbc,bc->vb", vertices[:, None] - start[None], axis) / length2   # along each bone
    closest = start[None] + np.clip(t, 0, 1)[..., None] * axis[None]
    bone = np.linalg.norm(vertices[:, None] - closest, axis=-1).argmin(1)
    along_bone = t[np.arange(len(vertices)), bone]

    _, back, across = frame
    thumb_axis = keypoints[4] - keypoints[3]
    thumb_dorsal = back - across - (back - across) @ thumb_axis / (thumb_axis @ thumb_axis) * thumb_axis
    thumb_bones = np.isin(children, kp.FINGER_KEYPOINTS["thumb"][1:])
    dorsal = np.where(thumb_bones[bone][:, None], thumb_dorsal / np.linalg.norm(thumb_dorsal), back)
    facing = np.einsum("vc,vc->v", normals, dorsal)

    palmar = _smoothstep(-0.1, 0.4, -facing)
    distal = np.isin(children, kp.FINGERTIPS)[bone]
    nail = distal * _smoothstep(0.3, 0.6, facing) * _smoothstep(0.35, 0.5, along_bone) * \
        (1 - _smoothstep(0.9, 1.0, along_bone))
    crease = np.zeros(len(vertices))
    for joint, child in CREASE_JOINTS:
        near = np.isin(bone, [kp.BONES.index((kp.PARENTS[joint], joint)), kp.BONES.index((joint, child))])
        direction = keypoints[child] - keypoints[kp.PARENTS[joint]]
        offset = (vertices[near] - keypoints[joint]) @ (direction / np.linalg.norm(direction))
        crease[near] = np.maximum(crease[near], np.exp(-0.5 * (offset / CREASE_WIDTH_M) ** 2))
    return SkinRegions(palmar, nail, crease)


def skin_tone(rng) -> tuple[np.ndarray, float]:
    """A skin albedo and its darkness in [0, 1] (0: the lightest tone, 1: the darkest)."""
    t = rng.uniform(0, len(SKIN_TONES) - 1)
    i = min(int(t), len(SKIN_TONES) - 2)
    tone = (1 - (t - i)) * SKIN_TONES[i] + (t - i) * SKIN_TONES[i + 1]
    # Brightness, and saturation along the tones' own red-to-yellow axis (per-channel noise turns pale skin green).
    d = rng.normal(0.0, 0.02)
    tone = tone * rng.normal(1.0, 0.04) * np.array([1.0, 1.0 + d, 1.0 + 2 * d])
    return np.clip(tone, 0, 1), t / (len(SKIN_TONES) - 1)


def hand_colors(rng, vertices, normals_cam, regions: SkinRegions) -> np.ndarray:
    """(V, 3) shaded vertex colours in [0, 1].

    ``vertices`` in the model frame (metres), posed; ``normals_cam`` their unit normals in the
    camera frame; ``regions`` the model's ``skin_regions``.
    """
    tone, darkness = skin_tone(rng)
    albedo = np.tile(tone, (len(vertices), 1))
    # Low-frequency variation: a few random plane waves over the surface (wavelengths 3-10 cm).
    for _ in range(3):
        k = rng.normal(size=3)
        k *= 2 * np.pi / rng.uniform(0.03, 0.10) / np.linalg.norm(k)
        albedo *= 1 + rng.uniform(0.02, 0.06) * np.sin(vertices @ k + rng.uniform(0, 2 * np.pi))[:, None]
    palm = rng.uniform(0.15, 0.3) + 0.45 * darkness
    albedo += (palm * regions.palmar)[:, None] * (PALM_TONE * rng.normal(1.0, 0.03, 3) - tone)
    albedo *= 1 - (rng.uniform(0.1, 0.3) * regions.crease)[:, None]
    albedo += (rng.uniform(0.4, 0.6) * regions.nail)[:, None] * (NAIL_TINT - albedo)
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), -rng.uniform(0.3, 1.0)])  # from the camera side
    warmth = rng.normal(0.0, 0.06)  # colour temperature: warm (reddish) to cool (bluish), never green
    light_color = np.array([1 + warmth, 1.0, 1 - warmth]) * rng.uniform(0.85, 1.15)
    return lambert(normals_cam, np.clip(albedo, 0, 1), light, rng.uniform(0.3, 0.55), light_color,
                   specular=rng.uniform(0.0, 0.2), shininess=rng.uniform(6.0, 25.0))


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


def draw_occluders(rng, image: np.ndarray, keypoints_2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-3 random shapes over the hand (objects held or in front of it): ellipses, boxes and
    sticks, flat-coloured with a shading ramp or textured like a background.

    Returns the RGB uint8 image with the occluders and their pixel mask (uint8 {0, 1}).
    """
    height, width = image.shape[:2]
    extent = float(np.ptp(keypoints_2d, axis=0).max())
    out = image.copy()
    mask = np.zeros((height, width), np.uint8)
    for _ in range(rng.integers(1, 4)):
        shape = np.zeros((height, width), np.uint8)
        centre = keypoints_2d[rng.integers(len(keypoints_2d))] + rng.normal(0, 0.1 * extent, 2)
        axes = np.maximum(rng.uniform(0.08, 0.25, 2) * extent, 3)
        angle = float(rng.uniform(0, 180))
        kind = rng.integers(3)
        if kind == 0:
            cv2.ellipse(shape, tuple(int(v) for v in centre), tuple(int(v) for v in axes), angle, 0, 360, 1, -1)
        elif kind == 1:
            box = cv2.boxPoints(((float(centre[0]), float(centre[1])), (float(2 * axes[0]), float(2 * axes[1])), angle))
            cv2.fillConvexPoly(shape, np.round(box).astype(np.int32), 1)
        else:  # a stick (pen, cable, another person's finger) across the hand
            half_length = extent * rng.uniform(0.3, 0.8)
            direction = half_length * np.array([np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))])
            cv2.line(shape, tuple(int(v) for v in centre - direction), tuple(int(v) for v in centre + direction), 1,
                     int(max(3, rng.uniform(0.03, 0.1) * extent)))
        ys, xs = np.nonzero(shape)
        if rng.random() < 0.5:
            values = background_image(rng, max(height, width))[ys, xs]
        else:
            ramp = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0), width)
            values = rng.uniform(0, 255, 3)[None] * ramp[xs, None]
        out[ys, xs] = np.clip(values + 0.5, 0, 255).astype(np.uint8)
        mask |= shape
    return out, mask
