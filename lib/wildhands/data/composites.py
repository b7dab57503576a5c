"""Full-scene test photos made from close-ups: a labelled hand photo pasted, small, into a large
hand-free background, alone or at the wrist of a person seen whole; the labels move with the paste.

Backgrounds are scikit-image's own photos (in the wheel, no download). ``HAND_FREE`` lists the ones
with no hand and no person, chosen for variety: outdoor and indoor scenes, textures, and objects of
skin-like colour and rounded shape (a cup, a cat's face, a rocket, a retina) that could pass for a
hand. ``person_photos`` lists the photos of people that installed packages ship. A pasted hand is
cut from its photo as a disc of 1.5 l around the hand (so some wrist or forearm comes along),
feathered, resized (area-averaged) so the hand's l is the target size, turned, and laid over the
scene. l: the edge of the tightest square box around the hand's visible keypoints.
``rendered_close_ups`` gives the project's own rendered hands as close-ups: a labelled set apart
from the calibration photos, to choose the detector's settings on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wildhands.config import load_profile
from wildhands.data.body_finder import arms_from_pose
from wildhands.data.crops import crop_box
from wildhands.data.detector import HandDetector, keypoint_errors_at_crop, match_detection
from wildhands.data.images import read_image
from wildhands.data.synthetic import HandAssets, render_samples
from wildhands.hand.hand_model import hand_model_from_config

SCENE_SIZE = (768, 1024)   # (H, W) of every composite, pixels

# scikit-image photos with no hand and no person, and why each is there.
HAND_FREE = {
    "rocket": "outdoor scene, a rounded light object on a pad",
    "coffee": "indoor close-up, a cup and saucer of skin-like colour",
    "chelsea": "a cat's face and paws: fur and skin tones",
    "stereo_motorcycle": "cluttered indoor scene, many small parts",
    "hubble_deep_field": "dark scene with small blobs",
    "retina": "a large orange disc with branching lines",
    "immunohistochemistry": "stained tissue: pink-brown texture",
    "coins": "many small round objects (grey)",
    "brick": "regular texture (grey)",
    "grass": "natural texture (grey)",
    "gravel": "natural texture (grey)",
    "moon": "smooth surface with craters (grey)",
}


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def skimage_photo(name: str) -> np.ndarray:
    """One of scikit-image's photos as RGB uint8."""
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise ValueError(f"skimage photo: no skimage.data.{name}")
    image = loader()
    return _as_rgb(image[0] if isinstance(image, tuple) else image)


def person_photos() -> dict[str, np.ndarray]:
    """Photos of people shipped by installed packages (name -> RGB): scikit-image's astronaut
    (waist up, gloved hands mostly hidden) and cameraman (seen from the side, black gloves on a
    camera), and matplotlib's Grace Hopper (head and shoulders), when those packages are here."""
    photos = {}
    for name in ("astronaut", "camera"):
        try:
            photos[name] = skimage_photo(name)
        except (ImportError, ValueError):
            pass
    try:
        from pathlib import Path

        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        if path.is_file():
            photos["grace_hopper"] = read_image(path)
    except ImportError:
        pass
    return photos


def background(name: str, size=SCENE_SIZE) -> np.ndarray:
    """A hand-free photo resized and centre-cropped to fill ``size`` (H, W)."""
    import cv2

    image = skimage_photo(name)
    h, w = image.shape[:2]
    factor = max(size[0] / h, size[1] / w)
    resized = cv2.resize(image, (max(size[1], round(w * factor)), max(size[0], round(h * factor))),
                         interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    y0, x0 = (resized.shape[0] - size[0]) // 2, (resized.shape[1] - size[1]) // 2
    return np.ascontiguousarray(resized[y0:y0 + size[0], x0:x0 + size[1]])


@dataclass
class Composite:
    """A scene and the hands pasted into it (labels (N, 21, 3): x, y, visible, scene pixels)."""
    image: np.ndarray
    labels: np.ndarray
    name: str
    hand_px: list            # each pasted hand's l, scene pixels
    person: bool = False     # the hand is at the wrist of a person seen whole


def paste_hand(scene: np.ndarray, photo: np.ndarray, keypoints: np.ndarray, hand_px: float, wrist_at,
               direction) -> tuple[np.ndarray, np.ndarray]:
    """``scene`` with the hand of ``photo`` (labels ``keypoints`` (21, 3)) pasted so that its l is
    ``hand_px``, its wrist at ``wrist_at`` (x, y) and its wrist-to-middle-knuckle direction along
    ``direction``; returns the new scene and the moved labels."""
    import cv2

    keypoints = np.asarray(keypoints, float)
    if keypoints.shape != (21, 3):
        raise ValueError(f"keypoints: expected (21, 3) x, y, visible, got {keypoints.shape}")
    if not hand_px > 0:
        raise ValueError(f"hand_px: expected a positive hand size, got {hand_px}")
    visible = keypoints[:, 2] > 0
    cx, cy, l_src = crop_box(keypoints[:, :2], visible, 1.0)
    factor = hand_px / l_src
    radius = 0.75 * l_src
    x0, y0 = int(max(0, np.floor(cx - 2 * radius))), int(max(0, np.floor(cy - 2 * radius)))
    x1 = int(min(photo.shape[1], np.ceil(cx + 2 * radius)))
    y1 = int(min(photo.shape[0], np.ceil(cy + 2 * radius)))
    patch = _as_rgb(photo)[y0:y1, x0:x1]
    small = cv2.resize(patch, (max(1, round(patch.shape[1] * factor)), max(1, round(patch.shape[0] * factor))),
                       interpolation=cv2.INTER_AREA)
    zoom = np.array([small.shape[1] / patch.shape[1], small.shape[0] / patch.shape[0]])
    points = (keypoints[:, :2] - [x0, y0] + 0.5) * zoom - 0.5
    yy, xx = np.mgrid[:small.shape[0], :small.shape[1]]
    centre = (np.array([cx, cy]) - [x0, y0] + 0.5) * factor - 0.5
    distance = np.hypot(xx - centre[0], yy - centre[1]) / (radius * factor)
    mask = np.clip((1.0 - distance) / 0.25, 0.0, 1.0).astype(np.float32)   # feathered over the disc's outer quarter

    knuckle = points[9] - points[0]
    direction = np.asarray(direction, float)
    angle = np.arctan2(direction[1], direction[0]) - np.arctan2(knuckle[1], knuckle[0])
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    shift = np.asarray(wrist_at, float) - rotation @ points[0]
    matrix = np.c_[rotation, shift]
    h, w = scene.shape[:2]
    warped = cv2.warpAffine(small, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.warpAffine(mask, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
    out = (alpha * warped + (1.0 - alpha) * scene).round().astype(np.uint8)
    moved = np.c_[points @ rotation.T + shift, keypoints[:, 2]]
    return out, moved


def hand_composite(photo, keypoints, background_name: str, hand_px: float, seed: int) -> Composite:
    """One labelled hand, alone, pasted at a random place and angle into a hand-free background."""
    rng = np.random.default_rng(seed)
    scene = background(background_name)
    h, w = scene.shape[:2]
    margin = 2 * hand_px
    wrist = rng.uniform([margin, margin], [w - margin, h - margin])
    angle = rng.uniform(0, 2 * np.pi)
    image, labels = paste_hand(scene, photo, keypoints, hand_px, wrist, (np.cos(angle), np.sin(angle)))
    return Composite(image, labels[None], f"{background_name}+hand{hand_px:.0f}", [float(hand_px)])


def person_composite(person: np.ndarray, arm, photo, keypoints, background_name: str, hand_px: float, seed: int,
                     hand_per_forearm: float = 0.7) -> Composite:
    """A person seen whole, scaled so that the forearm of ``arm`` (a ``body_finder.Arm`` in the
    person photo's pixels) carries a hand of ``hand_px`` (l = ``hand_per_forearm`` x forearm),
    placed at a random spot of a hand-free background, with the labelled hand pasted at that
    arm's wrist, pointing along the forearm."""
    import cv2

    rng = np.random.default_rng(seed)
    scene = background(background_name)
    forearm = float(np.linalg.norm(arm.wrist - arm.elbow))
    factor = hand_px / (hand_per_forearm * forearm)
    ph, pw = person.shape[:2]
    size = (max(1, round(pw * factor)), max(1, round(ph * factor)))
    if size[0] >= scene.shape[1] or size[1] >= scene.shape[0]:
        raise ValueError(f"person_composite: a {hand_px} px hand needs the person at {size[0]}x{size[1]} px, "
                         f"larger than the {scene.shape[1]}x{scene.shape[0]} scene")
    small = cv2.resize(_as_rgb(person), size, interpolation=cv2.INTER_AREA)
    x0 = int(rng.integers(0, scene.shape[1] - size[0] + 1))
    y0 = int(rng.integers(0, scene.shape[0] - size[1] + 1))
    scene = scene.copy()
    scene[y0:y0 + size[1], x0:x0 + size[0]] = small
    to_scene = lambda p: (np.asarray(p) + 0.5) * factor - 0.5 + [x0, y0]  # noqa: E731
    direction = np.asarray(arm.wrist, float) - np.asarray(arm.elbow, float)
    image, labels = paste_hand(scene, photo, keypoints, hand_px, to_scene(arm.wrist), direction)
    return Composite(image, labels[None], f"{background_name}+person+hand{hand_px:.0f}", [float(hand_px)], True)


# ----------------------------------------------------------------------------- the test set and its report

SIZE_BINS = ((16, 24), (24, 32), (32, 48), (48, 64))   # hand l, scene pixels: [low, high)
PASTE_SIZES = (18, 28, 40, 56)                          # one paste per bin and labelled hand


def person_arms(finder) -> list[tuple[str, np.ndarray, object]]:
    """(name, photo, arm) for every arm that the pose model sees clearly in the packaged photos of
    people, and in those photos mirrored (another person, arms swapped)."""
    found = []
    for name, photo in person_photos().items():
        for mirrored, view in (("", photo), ("-mirrored", np.ascontiguousarray(photo[:, ::-1]))):
            people = finder.people(view)
            if people:
                for arm in arms_from_pose(*people[0], min_visibility=0.75):
                    found.append((f"{name}{mirrored}-{arm.side}", view, arm))
    return found


def build_composites(photos, labels, arms=(), sizes=PASTE_SIZES, seed: int = 0) -> list[Composite]:
    """Every labelled hand (``photos`` RGB, ``labels`` (N, 21, 3)) at every size, alone in a
    hand-free background and, when ``arms`` (from ``person_arms``) are given, at a person's wrist;
    backgrounds and arms taken in turn, positions and angles from ``seed``."""
    names = list(HAND_FREE)
    out = []
    for i, (photo, label) in enumerate(zip(photos, labels)):
        for j, size in enumerate(sizes):
            k = i * len(sizes) + j
            out.append(hand_composite(photo, label, names[k % len(names)], size, seed + k))
            if arms:
                # i + j, not k: each size meets every arm (k would tie a size to one arm when
                # len(sizes) is a multiple of len(arms))
                arm_name, person, arm = arms[(i + j) % len(arms)]
                scene = names[(i + 5 * j + 3) % len(names)]
                composite = person_composite(person, arm, photo, label, scene, size, seed + k)
                composite.name = f"{scene}+{arm_name}+hand{size}"
                out.append(composite)
    return out


def composite_report(detector, composites, hand_free=()) -> dict:
    """Detection rate and mean 2D error (px at the 320 crop of 2.2 l around the labelled hand) per
    hand-size bin, for hands alone and at a person's wrist, split by the pass that found them
    (low-confidence guesses counted apart), and the other hands reported in those scenes (each
    scene holds one); false hands per hand-free photo; seconds per photo."""
    import time

    rows, times = [], []
    for composite in composites:
        start = time.perf_counter()
        found = detector.detect(composite.image)
        times.append(time.perf_counter() - start)
        for label, size in zip(composite.labels, composite.hand_px):
            match = match_detection(found, label[:, :2], label[:, 2])
            error = None if match is None else float(np.nanmean(keypoint_errors_at_crop(
                match.keypoints_2d, label[:, :2], label[:, 2])))
            rows.append({"name": composite.name, "person": composite.person, "hand_px": size, "error_px": error,
                         "found_by": None if match is None else match.found_by,
                         "low_confidence": bool(match is not None and match.low_confidence),
                         "score": None if match is None else float(match.score),
                         "others": len(found) - (match is not None)})
    false_hands, free_times = [], []
    for image in hand_free:
        start = time.perf_counter()
        false_hands.append(len(detector.detect(image)))
        free_times.append(time.perf_counter() - start)

    bins = {}
    for scene in ("alone", "person"):
        for low, high in SIZE_BINS:
            group = [r for r in rows if r["person"] == (scene == "person") and low <= r["hand_px"] < high]
            if not group:
                continue
            read = [r for r in group if r["error_px"] is not None and not r["low_confidence"]]
            guessed = [r for r in group if r["low_confidence"]]
            bins[f"{scene} {low}-{high} px"] = {
                "hands": len(group), "found": len(read),
                "rate": round(len(read) / len(group), 3),
                "mean_error_px": round(float(np.mean([r["error_px"] for r in read])), 1) if read else None,
                "by_pass": {name: sum(r["found_by"] == name for r in read) for name in ("hand", "tile", "body")},
                "low_confidence": len(guessed),
                "low_confidence_error_px": (round(float(np.mean([r["error_px"] for r in guessed])), 1)
                                            if guessed else None),
                "other_hands": sum(r["others"] for r in group)}
    return {"bins": bins, "rows": rows,
            "false_hands_per_photo": round(float(np.mean(false_hands)), 3) if false_hands else None,
            "hand_free_photos": len(false_hands),
            "seconds_per_composite": round(float(np.mean(times)), 3) if times else None,
            "seconds_per_hand_free_photo": round(float(np.mean(free_times)), 3) if free_times else None}


def labelled_photos(folder) -> tuple[list, list]:
    """The labelled close-ups of ``folder``/labels.json (RGB photos, (21, 3) labels), read in place
    (never copied); two empty lists when the folder has none."""
    import json
    from pathlib import Path

    path = Path(folder) / "labels.json"
    if not path.is_file():
        return [], []
    entries = json.loads(path.read_text())
    return ([read_image(Path(folder) / e["image"]) for e in entries],
            [np.asarray(e["keypoints_2d"], float) for e in entries])


def rendered_close_ups(count: int, profile: str = "quick", first_index: int = 20000, max_tries: int = 400
                       ) -> tuple[list, list]:
    """``count`` of the project's own rendered hands (the profile's synthetic test renders from
    ``first_index`` on) that MediaPipe finds at full size, as close-ups in the format of
    ``labelled_photos``: a labelled set that is not the calibration photos, to choose settings on."""
    config = load_profile(profile)
    model = hand_model_from_config(config)
    assets = HandAssets.of(model)
    photos, labels = [], []
    with HandDetector(tiles=False, second_pass=False) as detector:
        for index in range(first_index, first_index + max_tries):
            if len(photos) >= count:
                break
            sample = render_samples(model, config, "test", [index], assets)[0]
            keypoints = np.c_[sample["keypoints_2d"], np.ones(21)]
            if match_detection(detector.detect(sample["image"]), keypoints[:, :2]) is not None:
                photos.append(sample["image"])
                labels.append(keypoints)
    return photos, labels


def seconds_per_photo(detector, images, repeats: int = 1) -> float:
    """Mean wall time of ``detector.detect`` per image (the first call of a graph is not counted)."""
    import time

    if not images:
        return float("nan")
    detector.detect(images[0])
    start = time.perf_counter()
    for _ in range(repeats):
        for image in images:
            detector.detect(image)
    return (time.perf_counter() - start) / (repeats * len(images))
