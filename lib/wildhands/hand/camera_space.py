"""Hands in the camera frame: the photo's intrinsics and each hand's metric translation.

Owns: ``Intrinsics`` (a pinhole camera, fx = fy, principal point at the image centre unless
given), where they come from (``--focal PX``, ``--fov DEG``, the photo's EXIF, or the default
below), and ``place_hand``: a root-relative hand (metres, x right, y down, z away) plus its 2D
keypoints (image pixels) -> its translation in the camera frame.

Depth from the weak-perspective fit: the network's camera maps metres to crop pixels with
scale s, so s / zoom image pixels per metre; a pinhole camera shows a hand at mean depth Z with
f / Z pixels per metre, hence Z_mean = f * zoom / s, and the root sits at Z_mean minus the
keypoints' mean root-relative depth. x and y follow from the root's pixel through K^-1. A
Gauss-Newton fit of the full perspective projection to the 2D keypoints (3 unknowns, the pose
and shape fixed) then refines the translation. The hand's metric size is the hand model's
(its shape betas), so a hand larger than the model thinks is placed too far, in proportion.

Default field of view: a 26 mm lens in 35 mm-film terms (diagonal 79.5 degrees), the main
camera of current phones, which take most photos whose EXIF was stripped on the way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

FILM_DIAGONAL_MM = math.hypot(36.0, 24.0)   # 35 mm film: EXIF's FocalLengthIn35mmFilm refers to it
DEFAULT_FOCAL_35MM = 26.0
SOURCES = ("flag", "exif", "default")
MIN_DEPTH_M = 0.02                          # nothing is placed nearer than 2 cm to the camera

# EXIF tags (the Exif sub-IFD, 0x8769)
_EXIF_IFD = 0x8769
_FOCAL_LENGTH = 37386
_FOCAL_35MM = 41989
_FOCAL_PLANE_X_RESOLUTION = 41486
_FOCAL_PLANE_UNIT = 41488
_PIXEL_X_DIMENSION = 40962
_PIXEL_Y_DIMENSION = 40963
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0}       # FocalPlaneResolutionUnit: inch, cm, mm


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera in image pixels (pixel centres at integers, y down)."""
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    source: str = "default"
    note: str = ""

    def __post_init__(self):
        if not all(math.isfinite(v) for v in (self.fx, self.fy, self.cx, self.cy)) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"intrinsics: focal lengths must be positive and finite, got fx={self.fx}, fy={self.fy}")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"intrinsics: image size must be positive, got {self.width}x{self.height}")
        if self.source not in SOURCES:
            raise ValueError(f"intrinsics: source must be one of {', '.join(SOURCES)}, got {self.source!r}")

    @classmethod
    def centred(cls, focal_px: float, width: int, height: int, source: str, note: str = "") -> "Intrinsics":
        return cls(float(focal_px), float(focal_px), (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height),
                   source, note)

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def focal(self) -> float:
        return 0.5 * (self.fx + self.fy)

    @property
    def fov_deg(self) -> tuple[float, float]:
        """(horizontal, vertical) field of view in degrees."""
        return (math.degrees(2 * math.atan(self.width / (2 * self.fx))),
                math.degrees(2 * math.atan(self.height / (2 * self.fy))))

    def project(self, points) -> np.ndarray:
        """(..., 3) camera-frame metres -> (..., 2) image pixels."""
        p = np.asarray(points, np.float64)
        z = np.maximum(p[..., 2:3], 1e-9)
        return p[..., :2] / z * [self.fx, self.fy] + [self.cx, self.cy]

    def to_dict(self) -> dict:
        hfov, vfov = self.fov_deg
        return {"matrix": self.matrix, "fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy,
                "width": self.width, "height": self.height, "fov_x_deg": hfov, "fov_y_deg": vfov,
                "source": self.source, "note": self.note,
                "convention": "pixel centres at integers, x right, y down; camera frame x right, y down, z forward"}

    @classmethod
    def from_dict(cls, values: dict) -> "Intrinsics":
        """The camera written by ``to_dict`` (a JSON line's ``camera_intrinsics``)."""
        missing = [key for key in ("fx", "fy", "cx", "cy", "width", "height") if key not in values]
        if missing:
            raise ValueError(f"camera_intrinsics: missing {', '.join(missing)}")
        return cls(float(values["fx"]), float(values["fy"]), float(values["cx"]), float(values["cy"]),
                   int(values["width"]), int(values["height"]), str(values.get("source", "default")),
                   str(values.get("note", "")))


def focal_from_35mm(focal_35mm: float, width: int, height: int) -> float:
    """Pixels of focal length for a lens of ``focal_35mm`` in 35 mm-film terms (by the diagonal)."""
    return float(focal_35mm) * math.hypot(width, height) / FILM_DIAGONAL_MM


def intrinsics_from_focal(focal_px: float, width: int, height: int) -> Intrinsics:
    if not (math.isfinite(focal_px) and focal_px > 0):
        raise ValueError(f"--focal: expected a positive focal length in pixels, got {focal_px}")
    return Intrinsics.centred(focal_px, width, height, "flag", f"--focal {focal_px:g} px")


def intrinsics_from_fov(fov_deg: float, width: int, height: int) -> Intrinsics:
    """``fov_deg``: the horizontal field of view (across the image's width)."""
    if not (math.isfinite(fov_deg) and 0 < fov_deg < 180):
        raise ValueError(f"--fov: expected a horizontal field of view in (0, 180) degrees, got {fov_deg}")
    focal = width / (2 * math.tan(math.radians(fov_deg) / 2))
    return Intrinsics.centred(focal, width, height, "flag", f"--fov {fov_deg:g} deg (horizontal)")


def default_intrinsics(width: int, height: int) -> Intrinsics:
    return Intrinsics.centred(focal_from_35mm(DEFAULT_FOCAL_35MM, width, height), width, height, "default",
                              f"no focal length given or in EXIF: assumed {DEFAULT_FOCAL_35MM:g} mm in 35 mm terms "
                              "(a phone's main camera)")


def exif_intrinsics(path, width: int, height: int) -> Intrinsics | None:
    """Intrinsics from the photo's EXIF (``width`` x ``height``: the decoded, upright image), or None.

    FocalLengthIn35mmFilm first (it is independent of resizing); else FocalLength with the
    focal plane's resolution (sensor pixels per unit), rescaled from the EXIF pixel size to ours.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            exif = img.getexif()
            sub = exif.get_ifd(_EXIF_IFD)
    except (OSError, ValueError, SyntaxError):
        return None
    tags = {**dict(exif), **dict(sub)}
    f35 = _number(tags.get(_FOCAL_35MM))
    if f35:
        return Intrinsics.centred(focal_from_35mm(f35, width, height), width, height, "exif",
                                  f"EXIF FocalLengthIn35mmFilm {f35:g} mm")
    focal_mm, resolution = _number(tags.get(_FOCAL_LENGTH)), _number(tags.get(_FOCAL_PLANE_X_RESOLUTION))
    unit_mm = _UNIT_MM.get(int(_number(tags.get(_FOCAL_PLANE_UNIT)) or 2))
    if focal_mm and resolution and unit_mm:
        exif_width = _number(tags.get(_PIXEL_X_DIMENSION))
        exif_height = _number(tags.get(_PIXEL_Y_DIMENSION))
        # the long sides correspond, whatever the orientation tag did to the decoded image
        rescale = max(width, height) / max(exif_width, exif_height) if exif_width and exif_height else 1.0
        focal_px = focal_mm * resolution / unit_mm * rescale
        return Intrinsics.centred(focal_px, width, height, "exif",
                                  f"EXIF FocalLength {focal_mm:g} mm at {resolution:g} px per {unit_mm:g} mm")
    return None


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def check_camera_flags(focal_px: float | None = None, fov_deg: float | None = None, principal_point=None) -> None:
    """Refuse bad ``--focal`` / ``--fov`` / ``--principal`` values before any photo is read."""
    if focal_px is not None and fov_deg is not None:
        raise ValueError("give --focal or --fov, not both")
    if principal_point is not None and (len(principal_point) != 2
                                        or not all(math.isfinite(float(v)) for v in principal_point)):
        raise ValueError(f"--principal: expected two finite pixel coordinates X Y, got {principal_point}")
    if focal_px is not None:
        intrinsics_from_focal(float(focal_px), 1, 1)
    if fov_deg is not None:
        intrinsics_from_fov(float(fov_deg), 1, 1)


def photo_intrinsics(path, width: int, height: int, focal_px: float | None = None,
                     fov_deg: float | None = None, principal_point=None) -> Intrinsics:
    """The camera of one photo: ``focal_px`` or ``fov_deg`` when given, else EXIF, else the default;
    the principal point at the image centre unless ``principal_point`` (x, y) pixels is given."""
    if focal_px is not None and fov_deg is not None:
        raise ValueError("give --focal or --fov, not both")
    if focal_px is not None:
        found = intrinsics_from_focal(float(focal_px), width, height)
    elif fov_deg is not None:
        found = intrinsics_from_fov(float(fov_deg), width, height)
    else:
        found = exif_intrinsics(path, width, height) if path is not None and Path(path).is_file() else None
        found = found or default_intrinsics(width, height)
    if principal_point is None:
        return found
    cx, cy = (float(v) for v in principal_point)
    return replace(found, cx=cx, cy=cy, note=f"{found.note}; --principal {cx:g} {cy:g}")


# ----------------------------------------------------------------------------- placing a hand

def weak_perspective_translation(joints_3d, root_px, pixels_per_metre: float, intrinsics: Intrinsics) -> np.ndarray:
    """Translation (3,) of the root from the weak-perspective scale (image pixels per metre)."""
    joints = np.asarray(joints_3d, np.float64)
    if not (math.isfinite(pixels_per_metre) and pixels_per_metre > 0):
        raise ValueError(f"weak-perspective scale: expected positive pixels per metre, got {pixels_per_metre}")
    mean_depth = intrinsics.focal / pixels_per_metre
    root_depth = max(mean_depth - float(np.mean(joints[:, 2] - joints[0, 2])), MIN_DEPTH_M)
    u, v = np.asarray(root_px, np.float64)
    return np.array([(u - intrinsics.cx) / intrinsics.fx * root_depth,
                     (v - intrinsics.cy) / intrinsics.fy * root_depth, root_depth])


def perspective_translation(joints_3d, keypoints_2d, intrinsics: Intrinsics, start, weights=None,
                            iterations: int = 20) -> tuple[np.ndarray, float]:
    """Translation (3,) minimising the weighted squared reprojection error of ``joints_3d`` + T
    onto ``keypoints_2d`` under the full perspective camera (Levenberg-Marquardt on T alone);
    returns it and the weighted RMS reprojection error in pixels."""
    joints = np.asarray(joints_3d, np.float64)
    target = np.asarray(keypoints_2d, np.float64)
    w = np.ones(len(joints)) if weights is None else np.asarray(weights, np.float64)
    w = np.where(np.isfinite(target).all(axis=1), w, 0.0)
    target = np.nan_to_num(target)
    if (w > 0).sum() < 2:
        raise ValueError("perspective fit: needs at least 2 keypoints with positive weight")
    focal = np.array([intrinsics.fx, intrinsics.fy])
    centre = np.array([intrinsics.cx, intrinsics.cy])

    def residual(t):
        p = joints + t
        z = np.maximum(p[:, 2:3], MIN_DEPTH_M / 2)
        return (p[:, :2] / z * focal + centre - target), p, z

    t = np.asarray(start, np.float64).copy()
    r, p, z = residual(t)
    cost = float((w[:, None] * r ** 2).sum())
    damping = 1e-3
    for _ in range(iterations):
        jac = np.zeros((len(joints), 2, 3))
        jac[:, 0, 0] = focal[0] / z[:, 0]
        jac[:, 1, 1] = focal[1] / z[:, 0]
        jac[:, :, 2] = -p[:, :2] / z ** 2 * focal
        jtj = np.einsum("n,nki,nkj->ij", w, jac, jac)
        jtr = np.einsum("n,nki,nk->i", w, jac, r)
        step = np.linalg.solve(jtj + damping * np.diag(np.diag(jtj)), -jtr)
        candidate = t + step
        candidate[2] = max(candidate[2], MIN_DEPTH_M)
        r_new, p_new, z_new = residual(candidate)
        new_cost = float((w[:, None] * r_new ** 2).sum())
        if new_cost < cost:
            converged = cost - new_cost < 1e-12 * max(cost, 1.0)
            t, r, p, z, cost, damping = candidate, r_new, p_new, z_new, new_cost, damping / 10
            if converged:
                break
        else:
            damping *= 10
            if damping > 1e8:
                break
    return t, math.sqrt(cost / w.sum())


def place_hand(joints_3d, vertices, keypoints_2d, pixels_per_metre: float, intrinsics: Intrinsics,
               weights=None, refine: bool = True, start=None) -> dict:
    """Camera-frame placement of one root-relative hand.

    ``joints_3d`` (21, 3) and ``vertices`` (V, 3) metres, root-relative, camera-aligned;
    ``keypoints_2d`` (21, 2) image pixels (what the fit reprojects); ``pixels_per_metre`` the
    weak-perspective scale in image pixels. Returns ``translation_m`` (the root, camera frame),
    ``joints_3d_camera``, ``vertices_camera``, ``keypoints_2d_camera`` (their perspective
    projection), the weak-perspective start and the reprojection error. ``start`` (3,): the
    translation to start from instead (``pinhole_translation``: a hand fitted under this camera).
    """
    joints = np.asarray(joints_3d, np.float64)
    if joints.shape != (21, 3):
        raise ValueError(f"joints_3d: expected (21, 3) root-relative metres, got {joints.shape}")
    points = np.asarray(keypoints_2d, np.float64)
    if points.shape != (21, 2):
        raise ValueError(f"keypoints_2d: expected (21, 2) image pixels, got {points.shape}")
    joints = joints - joints[0]
    weak = weak_perspective_translation(joints, points[0], pixels_per_metre, intrinsics)
    start = weak if start is None else np.asarray(start, np.float64)
    translation, rms = (perspective_translation(joints, points, intrinsics, start, weights) if refine
                        else (start, float("nan")))
    joints_camera = joints + translation
    projected = intrinsics.project(joints_camera)
    return {"translation_m": translation, "translation_weak_perspective_m": weak,
            "translation_method": "perspective fit of keypoints_2d" if refine else "weak perspective",
            "joints_3d_camera": joints_camera,
            "vertices_camera": np.asarray(vertices, np.float64) - np.asarray(joints_3d, np.float64)[0] + translation,
            "keypoints_2d_camera": projected,
            "reprojection_rms_px": reprojection_rms_px(projected, points)}


def pinhole_translation(camera: dict, crop_transform, intrinsics: Intrinsics) -> np.ndarray | None:
    """The root's translation (3,) in the camera frame of a hand the refinement fitted under the photo's
    pinhole camera (``HandResult.camera`` with ``pinhole_crop_px``: the root at depth f / s, at (t - c) / s
    across, in its crop's mirrored frame for a left hand), or None when it was not fitted under
    ``intrinsics``."""
    if "pinhole_crop_px" not in camera:
        return None
    pinhole = np.asarray(camera["pinhole_crop_px"], np.float64)
    if not np.allclose(pinhole, crop_transform.pinhole(intrinsics.focal, (intrinsics.cx, intrinsics.cy)),
                       rtol=1e-6, atol=1e-6):
        return None
    scale = float(camera["scale_px_per_m"])
    across = (np.asarray(camera["trans_crop_px"], np.float64) - pinhole[1:]) / scale
    if crop_transform.mirrored:
        across[0] = -across[0]
    return np.array([across[0], across[1], pinhole[0] / scale])


def reprojection_rms_px(projected, keypoints_2d) -> float:
    """RMS over keypoints of the pixel distance between (K, 2) projected points and ``keypoints_2d``."""
    return float(np.sqrt(np.mean(np.sum((np.asarray(projected) - np.asarray(keypoints_2d)) ** 2, axis=1))))


def image_pixels_per_metre(camera: dict, crop_transform) -> float:
    """The weak-perspective scale of ``HandResult.camera`` in image pixels per metre."""
    return float(camera["scale_px_per_m"]) / float(crop_transform.zoom)


def place_results(results, intrinsics: Intrinsics, refine: bool = True) -> None:
    """Add the camera-frame fields to each ``predict.HandResult``'s JSON extras (one shared camera)."""
    for result in results:
        placed = place_hand(result.joints_3d, result.vertices, result.keypoints_2d,
                            image_pixels_per_metre(result.camera, result.crop), intrinsics, refine=refine)
        result.extras.update(placed)
