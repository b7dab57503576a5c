"""The refinement of a network prediction by the 2D fit (paper eq. 10, extended): its settings.

Per-keypoint weights from each keypoint's expected error, the prediction held as an anchor, the
robust (Geman-McClure) scale for detector keypoints, and the pose space and priors of the fit
(``[refine]``, ``[refine.with_3d]`` over ``[fit2d]``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from wildhands.config import REFINE_MODEL_KEYS, setting, table
from wildhands.fit.fit2d import EnergySettings, FitOptions, FitSettings
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import world_landmarks_in_camera, world_landmarks_in_crop_view

KEYPOINT_SOURCES = ("detector", "labels")
KEYPOINT_SIGMAS = ("photo", "global")
PROJECTIONS = ("pinhole", "weak")
WORLD_FRAMES = ("ray", "camera")
ANCHOR_SETTINGS = {"rotation": "anchor_rotation_rad", "betas": "anchor_betas", "pose": "anchor_pose"}
# predict's refinement solves in single precision: the same results to 0.01 mm and 0.01 px as double
# (DexYCB test subjects, detector-like, articulated and exact keypoints, benchmarks/
# bench_refinement_real_poses.py; the calibration photos' medians), 5 ms a hand faster on 2 cores.
REFINE_DTYPE = torch.float32
# ... and from the network's plain view: its test-time average over quarter turns ([inference]) is
# 0.5 mm closer unrefined, but the refinement ends where it ends from either (DexYCB training subjects,
# half noise, detector-like 11.16 / 11.06 / 5.97 mm both, exact 5.19 / 4.51 / 2.76 against 5.15 / 4.45 /
# 2.69; the calibration photos' median 14.72 px both, with the labels given 1.4 px against 1.6 and,
# on the 3 RHD hands, 20.3 / 14.9 / 9.8 mm against 19.3 / 15.0 / 9.6), 4 ms a hand sooner.
REFINE_QUARTER_TURNS = 1


def _energy_over(energy: EnergySettings, overrides: dict, table_name: str) -> EnergySettings:
    """``energy`` with the ``REFINE_MODEL_KEYS`` that ``overrides`` sets (only those, when ``table_name``
    is a table of pose space and priors alone)."""
    if table_name == "refine.with_3d":
        unknown = sorted(set(overrides) - set(REFINE_MODEL_KEYS))
        if unknown:
            raise ValueError(f"[refine.with_3d]: unknown settings {', '.join(unknown)} (known: "
                             f"{', '.join(REFINE_MODEL_KEYS)})")
    return dataclasses.replace(energy, **{key: overrides[key] for key in REFINE_MODEL_KEYS if key in overrides})


def _anchor_sigma(config: dict) -> dict | None:
    """``Fit2D.fit``'s ``anchor_sigma`` from ``[refine]`` (None unless ``anchor = true``)."""
    if not setting(config, "refine", "anchor"):
        return None
    refine = table(config, "refine")
    missing = [key for key in ANCHOR_SETTINGS.values() if key not in refine]
    if missing:
        raise ValueError(f"[refine]: anchor = true needs {', '.join(missing)}")
    return {name: float(refine[key]) for name, key in ANCHOR_SETTINGS.items()}


@dataclass(frozen=True)
class RefineSettings:
    """A profile's ``[refine]`` table (over ``[fit2d]``): how the 2D fit refines a network prediction.

    ``energy``: ``[fit2d]``'s pose space and priors with the ``REFINE_MODEL_KEYS`` that ``[refine]``
    sets (the refinement of a prediction need not share the 2D-fit baseline's); ``energy_with_3d``:
    those, then ``[refine.with_3d]``'s, for hands whose detector's 3D keypoints join the fit (depth
    then observed, the pose can leave the 10-D space). ``options``: ``[fit2d]``'s search, one start
    (the prediction), ``[refine]``'s ``iterations`` when set, ``robust_rounds`` and ``extra_starts``;
    ``robust`` (Geman-McClure scale in expected keypoint errors) applies to detector keypoints
    (``options_for``). ``anchor_sigma``: the prediction as a Gaussian prior (None: ``anchor = false``).
    ``label_sigma_px``: the expected error of annotated keypoints; ``keypoint_sigma``: detector
    keypoints weighted by this photo's spread ("photo") or the global noise model ("global"), each
    expected error times ``keypoint_sigma_scale`` (the weight of detector keypoints against the
    priors); ``world_sigma_mm``: the sigma per axis of the detector's 3D keypoints (0: not used);
    ``projection``: hands of a photo projected by its pinhole camera ("pinhole": ``Fit2D.fit`` ``pinhole``,
    the photo's intrinsics through the hand's crop) or by the weak-perspective camera ("weak");
    ``world_frame``: the axes of the detector's 3D keypoints, "ray" (the hand as seen along the ray to
    it, as MediaPipe's: turned into the frame the fit works in, ``world_for_fit``) or "camera".
    """
    energy: EnergySettings
    energy_with_3d: EnergySettings
    options: FitOptions
    robust: float
    anchor_sigma: dict | None
    label_sigma_px: float
    keypoint_sigma: str
    world_sigma_mm: float
    keypoint_sigma_scale: float
    projection: str
    world_frame: str = "ray"

    def __post_init__(self):
        if self.projection not in PROJECTIONS:
            raise ValueError(f"[refine] projection: expected one of {', '.join(PROJECTIONS)}, got {self.projection!r}")
        if self.world_frame not in WORLD_FRAMES:
            raise ValueError(f"[refine] world_frame: expected one of {', '.join(WORLD_FRAMES)}, "
                             f"got {self.world_frame!r}")
        if not (np.isfinite(self.keypoint_sigma_scale) and self.keypoint_sigma_scale > 0):
            raise ValueError(f"[refine] keypoint_sigma_scale: expected a number > 0, got {self.keypoint_sigma_scale}")
        if not (np.isfinite(self.world_sigma_mm) and self.world_sigma_mm >= 0):
            raise ValueError(f"[refine] world_sigma_mm: expected mm >= 0 (0: off), got {self.world_sigma_mm}")

    @classmethod
    def from_config(cls, config: dict) -> "RefineSettings":
        fit2d, refine = FitSettings.from_config(config), table(config, "refine")
        energy = _energy_over(fit2d.energy, refine, "refine")
        robust, rounds = float(setting(config, "refine", "robust")), int(setting(config, "refine", "robust_rounds"))
        if robust < 0 or rounds < 0:
            raise ValueError(f"[refine]: robust and robust_rounds must be >= 0, got {robust}, {rounds}")
        keypoint_sigma = str(setting(config, "refine", "keypoint_sigma"))
        if keypoint_sigma not in KEYPOINT_SIGMAS:
            raise ValueError(f"[refine] keypoint_sigma: expected one of {', '.join(KEYPOINT_SIGMAS)}, "
                             f"got {keypoint_sigma!r}")
        # A prediction starts near its optimum: [refine] iterations, when set, fewer than the 2D fit's.
        iterations = int(refine["iterations"]) if "iterations" in refine else fit2d.options.iterations
        options = dataclasses.replace(fit2d.options, num_inits=1, iterations=iterations, robust_rounds=rounds,
                                      extra_starts=int(setting(config, "refine", "extra_starts")))
        with_3d = _energy_over(energy, table(config, "refine.with_3d"), "refine.with_3d")
        return cls(energy=energy, energy_with_3d=with_3d,
                   options=options, robust=robust, anchor_sigma=_anchor_sigma(config),
                   label_sigma_px=float(setting(config, "refine", "label_sigma_px")), keypoint_sigma=keypoint_sigma,
                   world_sigma_mm=float(setting(config, "refine", "world_sigma_mm")),
                   keypoint_sigma_scale=float(setting(config, "refine", "keypoint_sigma_scale")),
                   projection=str(setting(config, "refine", "projection")),
                   world_frame=str(setting(config, "refine", "world_frame")))

    def world_for_fit(self, world, keypoints_px, pinhole=None, usable=None) -> np.ndarray:
        """(B, 21, 3) the detector's 3D keypoints ``world`` in the frame the refinement fits in, for hands
        whose keypoints ``keypoints_px`` (B, 21, 2; ``usable`` (B, 21) of them) are in the pixels of the
        pinhole cameras ``pinhole`` (B, 3; a crop's): "ray" landmarks turned into the camera frame under
        ``projection`` "pinhole" (``camera.world_landmarks_in_camera``), into the crop's view under
        "weak" (``camera.world_landmarks_in_crop_view``); "camera" landmarks, or no camera known, as they are."""
        world = np.asarray(world, np.float64)
        if pinhole is None or self.world_frame == "camera":
            return world
        if self.projection == "weak":
            return world_landmarks_in_crop_view(world, keypoints_px, pinhole, usable)
        return world_landmarks_in_camera(world, keypoints_px, pinhole, usable)

    def energy_for(self, with_3d: bool) -> EnergySettings:
        """The pose space and priors of hands fitted with (True) or without the detector's 3D keypoints."""
        return self.energy_with_3d if with_3d else self.energy

    def options_for(self, sources="detector") -> FitOptions:
        """``options`` with ``robust`` for the hands' keypoint ``sources``: one source (a float) or one per
        hand (an array). Annotated keypoints ("labels") are fitted with squared residuals, so that a
        far-off start is not read as all-outliers; detector keypoints with ``robust``. A batch with
        no detector keypoints has no reweighted rounds: its one round takes all the rounds' iterations."""
        for source in [sources] if isinstance(sources, str) else sources:
            if source not in KEYPOINT_SOURCES:
                raise ValueError(f"keypoint source: expected one of {', '.join(KEYPOINT_SOURCES)}, got {source!r}")
        scale = (self.robust if sources == "detector" else 0.0) if isinstance(sources, str) else \
            np.array([self.robust if s == "detector" else 0.0 for s in sources])
        if not np.any(scale):  # one round only: the rounds' steps in it, so every hand gets the same budget
            return dataclasses.replace(self.options, robust=scale,
                                       iterations=self.options.iterations * (1 + self.options.robust_rounds))
        return dataclasses.replace(self.options, robust=scale)

    def fit_settings(self, sources="detector", with_3d: bool = False) -> FitSettings:
        """The refinement of hands with keypoints from ``sources`` (``options_for``), fitted with (True) or
        without the detector's 3D keypoints (``energy_for``); the anchor is ``anchor_sigma``."""
        return FitSettings(self.energy_for(with_3d), self.options_for(sources))

    def detector_sigma_px(self, sigma_px) -> np.ndarray:
        """The expected error the refinement gives a detector keypoint whose measured one is ``sigma_px``."""
        return np.asarray(sigma_px, np.float64) * self.keypoint_sigma_scale

    def keypoint_weights(self, source: str, confidence=None, sigma_px=None) -> np.ndarray:
        """Per-keypoint weights p_i of eq. 10 when refining a prediction from keypoints of ``source``.

        The fit's residuals are taken in units of each keypoint's expected error sigma_i (the MAP
        estimate under Gaussian keypoint noise with eq. 10's priors): p_i = confidence_i / sigma_i^2.
        "detector": sigma_i given as ``sigma_px`` (px at 320): this photo's (the detector's passes'
        spread, ``detector.KeypointSigmaRule``) or the measured MediaPipe errors
        (``DetectorNoise.keypoint_sigma_px``, 4-16 px at 320), so noisy keypoints no longer drag the
        hand into implausible shapes, times ``keypoint_sigma_scale``; "labels": annotated keypoints, ``label_sigma_px`` (1 px in the
        profiles: eq. 10 as the paper weights it).
        """
        if source not in KEYPOINT_SOURCES:
            raise ValueError(f"keypoint source: expected one of {', '.join(KEYPOINT_SOURCES)}, got {source!r}")
        if source == "detector" and sigma_px is not None:
            sigma = self.detector_sigma_px(sigma_px)
            if sigma.shape != (kp.NUM_KEYPOINTS,) or not (np.isfinite(sigma) & (sigma > 0)).all():
                raise ValueError(f"sigma_px: expected {kp.NUM_KEYPOINTS} finite values > 0, got {sigma}")
        elif source == "detector":
            raise ValueError("sigma_px: detector keypoints need their expected error (this photo's, or "
                             "data.augment.DetectorNoise's measured one)")
        else:
            sigma = np.full(kp.NUM_KEYPOINTS, self.label_sigma_px)
        weights = 1.0 / np.square(np.asarray(sigma, np.float64))
        return weights if confidence is None else np.asarray(confidence, np.float64) * weights


