"""Photographs to 3D hands: detection, the paper's crops, the network, the 2D-fit refinement, outputs.

``python -m wildhands predict IMAGE_OR_DIR... --out DIR`` writes, per image, ``DIR/<stem>.json``
(every hand: handedness, score, crop box, ``keypoints_2d`` 21x2 in original-image pixels,
``joints_3d`` 21x3 metres, root-relative, camera-aligned (x right, y down, z away from the
camera), vertices, parameters and camera), ``DIR/<stem>_overlay.png`` (shaded mesh and
skeleton on the photo) and ``DIR/<stem>_hand<i>.obj``. Left hands are mirrored into right
ones for the network and the results mirrored back. A ``2d+depth`` network also reads each
hand's depth cue from the detector's world landmarks (zero for a hand without them). A bad image
never stops the batch: its JSON holds the error, the others are processed, and the exit code is
non-zero only when no image could be processed.

Every hand is also placed in the photo's camera (``camera_space``: ``camera_intrinsics`` per
image, ``translation_m``, ``joints_3d_camera``, ``vertices_camera`` per hand, from the perspective
fit of rotation, translation and pose, ``fit.perspective``; ``--camera-fit``); ``--export glb``
adds ``DIR/<stem>.glb``, the hands rigged and the camera (``export_gltf``); ``--space camera``
writes the OBJ files in the camera frame.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from wildhands.app.drawing import draw_hand_overlay
from wildhands.app.export_gltf import export_photo
from wildhands.config import apply_overrides, load_profile
from wildhands.data.augment import DetectorNoise, resize_image
from wildhands.data.crops import CropTransform, crop_image, hand_transform, make_transform
from wildhands.data.detection import Detection
from wildhands.data.detector import detector_from_config, match_detection
from wildhands.data.images import ImageError, list_images, read_image
from wildhands.fileio import atomic_path, write_json, write_obj
from wildhands.fit.fit2d import Fit2D
from wildhands.fit.perspective import MODES as CAMERA_FITS
from wildhands.fit.perspective import PerspectiveSettings, place_results
from wildhands.fit.refine import REFINE_DTYPE, REFINE_QUARTER_TURNS
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import (CROP_SCALE, matrix_to_axis_angle, pinhole_project, ray_rotation,
                                   world_landmarks_in_camera)
from wildhands.hand.camera_space import Intrinsics, check_camera_flags, default_intrinsics, photo_intrinsics
from wildhands.hand.hand_model import hand_model_from_config
from wildhands.hand.parameters import PARAMETER_FIELDS, HandParameters
from wildhands.net.checkpoints import load_model
from wildhands.net.inference import InferenceSettings, current_inference_config
from wildhands.net.model import HandDecoder, turned_average
from wildhands.net.samples import InputSettings, depth_cue, network_input
from wildhands.paths import OUTPUTS_DIR, PARAMS_DIR

DEFAULT_CHECKPOINT = PARAMS_DIR / "checkpoints" / "wildhands_2d_open_hand.pt"
TRAINED_CHECKPOINT = OUTPUTS_DIR / "checkpoints" / "quick-2d-finetune" / "final.pt"
METHODS = ("network", "fit2d")
SPACES = ("root", "camera")    # OBJ vertices: root-relative, or placed in the photo's camera
EXPORTS = ("glb",)
MIN_KEYPOINTS = 6          # fewer usable keypoints cannot place a hand
RGB_NOTE = "the RGB variants are trained on synthetic renders only; expect weaker results on photographs"


def default_checkpoint() -> Path:
    """The newer of the shipped checkpoint and the one ``./run_all.sh`` trained (quick profile, 2D)."""
    candidates = [p for p in (TRAINED_CHECKPOINT, DEFAULT_CHECKPOINT) if p.is_file()]
    if not candidates:
        raise FileNotFoundError(f"no checkpoint at {DEFAULT_CHECKPOINT} or {TRAINED_CHECKPOINT}: run ./run_all.sh "
                                "to train one, or pass --checkpoint PATH")
    return max(candidates, key=lambda p: p.stat().st_mtime)


@dataclass
class HandInput:
    """One hand to reconstruct: keypoints in original pixels (NaN where unknown), their confidence,
    and what a detector said of it (``detection``: per-keypoint sigma, 3D world landmarks)."""
    keypoints_2d: np.ndarray
    confidence: np.ndarray
    handedness: str = "right"
    score: float = 1.0
    source: str = "detector"
    detection: Detection | None = None

    @classmethod
    def from_detection(cls, det: Detection) -> "HandInput":
        return cls(det.keypoints_2d, np.ones(kp.NUM_KEYPOINTS), det.handedness, det.score, "mediapipe", det)

    @property
    def sigma_px(self) -> np.ndarray | None:
        """(21,) expected error per keypoint in image pixels (None: unknown, the global model applies)."""
        return None if self.detection is None or self.source == "keypoints" else self.detection.sigma_px

    @property
    def world_landmarks(self) -> np.ndarray | None:
        return None if self.detection is None else self.detection.world_landmarks


@dataclass
class HandResult:
    handedness: str
    score: float
    crop: CropTransform
    keypoints_2d: np.ndarray      # (21, 2) original-image pixels
    joints_3d: np.ndarray         # (21, 3) metres, root-relative, camera-aligned
    vertices: np.ndarray          # (V, 3) same frame
    vertices_2d: np.ndarray       # (V, 2) original-image pixels
    params: dict
    camera: dict
    method: str
    fit_error_px: float | None = None
    extras: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"handedness": self.handedness, "score": self.score, "method": self.method,
                "crop_box": {"center_x": self.crop.center_x, "center_y": self.crop.center_y,
                             "size": self.crop.size, "mirrored": self.crop.mirrored},
                "crop_transform": self.crop.to_dict(),
                "keypoints_2d": self.keypoints_2d, "joints_3d": self.joints_3d, "vertices": self.vertices,
                "params": self.params, "camera": self.camera, "fit_error_px": self.fit_error_px,
                "keypoint_names": list(kp.KEYPOINT_NAMES), **self.extras}


def parse_keypoints_json(path) -> list[HandInput] | dict:
    """Hands from ``--keypoints``: one hand (21 [x, y(, c)]), a list of hands, or {image name: hands}."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"--keypoints {path}: not a readable JSON file ({err})") from None
    if isinstance(data, dict):
        return {name: _hands_from_json(value, f"--keypoints {path} [{name}]") for name, value in data.items()}
    return _hands_from_json(data, f"--keypoints {path}")


def _hands_from_json(value, name: str) -> list[HandInput]:
    arr = np.asarray(value, dtype=object)
    hands = [value] if arr.ndim == 2 and len(value) == kp.NUM_KEYPOINTS else list(value)
    out = []
    for i, hand in enumerate(hands):
        side = "right"
        if isinstance(hand, dict):
            side = str(hand.get("handedness", "right")).lower()
            hand = hand.get("keypoints_2d", hand.get("keypoints"))
        try:
            pts = np.asarray(hand, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: hand {i} is not a list of numbers") from None
        if pts.shape not in ((kp.NUM_KEYPOINTS, 2), (kp.NUM_KEYPOINTS, 3)):
            raise ValueError(f"{name}: hand {i} needs 21 [x, y] or [x, y, confidence], got shape {pts.shape}")
        conf = pts[:, 2] if pts.shape[1] == 3 else np.ones(kp.NUM_KEYPOINTS)
        out.append(HandInput(pts[:, :2], conf, side, 1.0, "keypoints"))
    return out


class Predictor:
    """The whole pipeline on in-memory images. Build once, call ``predict`` per image.

    ``config``: the checkpoint's profile with ``[inference]``, ``[fit2d]`` and ``[refine]`` from its
    profile as it is now (``inference.current_inference_config``: improving them needs no
    retraining), then ``config_overrides``; ``inference``: those three tables, read once.
    """

    def __init__(self, checkpoint=None, method: str = "network", refine: bool = True, device: str = "cpu",
                 hand_model=None, detector=None, config_overrides: dict | None = None):
        if method not in METHODS:
            raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
        self.method, self.refine, self.device = method, refine, torch.device(device)
        self.model = None
        if method == "network":
            self.checkpoint = Path(checkpoint) if checkpoint else default_checkpoint()
            self.model, trained_config = load_model(self.checkpoint, hand_model=hand_model, device=self.device)
            self.config = apply_overrides(current_inference_config(trained_config), config_overrides)
            self.hand_model = self.model.hand_model
        else:
            self.checkpoint = None
            self.config = load_profile("quick", config_overrides)
            self.hand_model = hand_model or hand_model_from_config(self.config)
        self.inference = InferenceSettings.from_config(self.config)
        # the detector's measured keypoint errors (read once: a file), for hands without this photo's sigma
        self._measured_sigma_px = DetectorNoise.from_config(self.config).keypoint_sigma_px
        self.inputs = InputSettings.from_config(self.config)
        self._detector = detector
        self._fit = self._full_pose_model = None
        self._refine_fits = {}  # with the detector's 3D keypoints or not -> Fit2D

    @property
    def variant(self) -> str:
        return self.model.variant if self.model is not None else "none"

    @property
    def detector(self):
        if self._detector is None:
            self._detector = detector_from_config(self.config)
        return self._detector

    def find_hands(self, image: np.ndarray, bbox=None) -> list[HandInput]:
        """MediaPipe on the photo, or on a region ``bbox`` = (x, y, w, h) enlarged to 2.2 of its edge."""
        if bbox is None:
            detections = self.detector.detect(image)
        else:
            x, y, w, h = (float(v) for v in bbox)
            if not (w > 0 and h > 0):
                raise ValueError(f"--bbox: width and height must be positive, got {bbox}")
            region = make_transform(image.shape, (x + w / 2, y + h / 2, CROP_SCALE * max(w, h)))
            detections = [d.mapped(region.to_image, 1.0 / region.zoom)
                          for d in self.detector.detect(crop_image(image, region))]
        return [HandInput.from_detection(d) for d in detections]

    def with_detections(self, image: np.ndarray, hands: list[HandInput]) -> list[HandInput]:
        """Given hands (``--keypoints``) with the detection of the same hand attached, when the
        detector finds it: its 3D world landmarks then join the fit and feed a depth-reading network
        (the given keypoints stay)."""
        wanted = (self.refine and self.use_world_landmarks) or self.reads_depth
        if not wanted or all(h.detection is not None for h in hands):
            return hands
        found = self.detector.detect(image)
        out = []
        for hand in hands:
            pts = np.asarray(hand.keypoints_2d, np.float64)
            known = np.isfinite(pts).all(axis=1) & (np.asarray(hand.confidence) > 0)
            match = (match_detection(found, np.nan_to_num(pts), known.astype(float))
                     if hand.detection is None and known.sum() >= MIN_KEYPOINTS else None)
            out.append(hand if match is None else
                       HandInput(hand.keypoints_2d, hand.confidence, hand.handedness, hand.score, hand.source, match))
        return out

    @property
    def use_world_landmarks(self) -> bool:
        return self.method == "network" and self.inference.refine.world_sigma_mm > 0

    @property
    def reads_depth(self) -> bool:
        """Whether the network reads the detector's depth cue (a ``2d+depth`` checkpoint)."""
        return self.method == "network" and "depth" in self.variant

    @staticmethod
    def depth_cues(hands: list[HandInput], transforms) -> torch.Tensor:
        """(B, 21) each hand's ``samples.depth_cue`` from its world landmarks, in its crop's frame (a left
        hand's mirrored with it); zeros for a hand without them."""
        cues = []
        for hand, transform in zip(hands, transforms):
            world = hand.world_landmarks
            if world is not None and transform.mirrored:
                world = np.asarray(world, np.float64) * [-1.0, 1.0, 1.0]
            cues.append(depth_cue(world))
        return torch.as_tensor(np.stack(cues))

    def predict(self, image: np.ndarray, hands: list[HandInput] | None = None, bbox=None,
                intrinsics: Intrinsics | None = None) -> list[HandResult]:
        """Reconstruct every hand of ``image`` (found by the detector unless ``hands`` are given).

        ``intrinsics``: the photo's camera (``camera_space.photo_intrinsics``; None: the default lens),
        which the refinement projects the hands with when ``[refine] projection`` is "pinhole"."""
        hands = self.find_hands(image, bbox) if hands is None else self.with_detections(image, hands)
        prepared = [self._prepare(image, hand, i) for i, hand in enumerate(hands)]
        if not prepared:
            return []
        crops = np.stack([p[1] for p in prepared])
        keypoints_crop = torch.as_tensor(np.stack([p[2] for p in prepared]))
        confidence = torch.as_tensor(np.stack([p[3] for p in prepared]))
        transforms = [p[0] for p in prepared]
        cameras = self.crop_pinholes(image.shape, transforms, intrinsics)
        pinholes = cameras if self.projects_by_pinhole else None
        params, fit_error = self._parameters(crops, keypoints_crop, confidence, hands, transforms, pinholes, cameras)
        return [self._result(hand, transform, params[i], None if fit_error is None else float(fit_error[i]),
                             None if pinholes is None else pinholes[i], cameras[i])
                for i, (hand, transform) in enumerate(zip(hands, transforms))]

    @property
    def projects_by_pinhole(self) -> bool:
        """Whether the refinement projects by the photo's pinhole camera (``[refine] projection``)."""
        return self.method == "network" and self.refine and self.inference.refine.projection == "pinhole"

    @staticmethod
    def crop_pinholes(shape: tuple, transforms, intrinsics: Intrinsics | None) -> np.ndarray:
        """(B, 3) the pinhole camera ``intrinsics`` (None: the default lens) of an image of ``shape``
        through each crop of ``transforms`` (``CropTransform.pinhole``)."""
        height, width = shape[:2]
        if intrinsics is None:
            intrinsics = default_intrinsics(width, height)
        elif (intrinsics.width, intrinsics.height) != (width, height):
            raise ValueError(f"intrinsics: made for a {intrinsics.width}x{intrinsics.height} image, the image is "
                             f"{width}x{height}")
        return np.stack([t.pinhole(intrinsics.focal, (intrinsics.cx, intrinsics.cy)) for t in transforms])

    def _prepare(self, image, hand: HandInput, index: int):
        pts = np.asarray(hand.keypoints_2d, np.float64)
        conf = np.where(np.isfinite(pts).all(axis=1), np.nan_to_num(np.asarray(hand.confidence, np.float64)), 0.0)
        height, width = image.shape[:2]
        inside = (pts[:, 0] > -0.5) & (pts[:, 0] < width - 0.5) & (pts[:, 1] > -0.5) & (pts[:, 1] < height - 0.5)
        usable = (conf > 0) & inside
        if usable.sum() < MIN_KEYPOINTS:
            raise ValueError(f"hand {index}: only {int(usable.sum())} keypoints are finite, confident and inside the "
                             f"{width}x{height} image (at least {MIN_KEYPOINTS} needed)")
        conf = np.where(usable, conf, 0.0)
        transform = hand_transform(image.shape, np.nan_to_num(pts), usable, mirror=hand.handedness == "left")
        crop = crop_image(image, transform)
        keypoints_crop = np.where(usable[:, None], transform.to_crop(np.nan_to_num(pts)), 0.0)
        return transform, crop, keypoints_crop.astype(np.float32), conf.astype(np.float32)

    @torch.no_grad()
    def _parameters(self, crops, keypoints_crop, confidence, hands: list[HandInput], transforms, pinholes=None,
                    cameras=None):
        """Per hand, its parameters (a batch of one each) and, when fitted, its 2D fit error (px)."""
        if self.method == "fit2d":
            if self._fit is None:
                self._fit = Fit2D.from_settings(self.hand_model, self.inference.fit.energy)
            result = self._fit.fit(keypoints_crop, confidence, options=self.inference.fit.options)
            return _split_hands(result.parameters()), result.error_px.numpy()
        size = self.inputs.input_size
        images = torch.as_tensor(np.stack([resize_image(c, size) for c in crops])) if "rgb" in self.variant else None
        depth = self.depth_cues(hands, transforms) if self.reads_depth else None
        x = network_input(self.variant, size, self.inputs.heatmap_sigma, images=images, keypoints_2d=keypoints_crop,
                          confidence=confidence, crop_size=self.inputs.crop_size, depth=depth)
        turns = REFINE_QUARTER_TURNS if self.refine else self.inference.quarter_turns
        params = turned_average(self.model.encoder, x.to(self.device), turns).detach()
        if not self.refine:
            return _split_hands(params), None
        return self._refined(params, keypoints_crop, confidence, hands, transforms, pinholes, cameras)

    def _refined(self, params, keypoints_crop, confidence, hands: list[HandInput], transforms, pinholes=None,
                 cameras=None):
        """The 2D-fit refinement of the network's prediction, in two groups: hands with the
        detector's 3D keypoints are fitted with them and ``[refine.with_3d]``'s pose space, the
        others with ``[refine]``'s (``RefineSettings.energy_for``)."""
        refine = self.inference.refine
        sources = ["labels" if h.source == "keypoints" else "detector" for h in hands]
        per_photo = refine.keypoint_sigma == "photo"
        measured = self._measured_sigma_px
        weights = torch.as_tensor(np.stack([
            refine.keypoint_weights(source, c,
                                    h.sigma_px * t.zoom if per_photo and h.sigma_px is not None else measured)
            for source, c, h, t in zip(sources, confidence.numpy(), hands, transforms)]))
        with_3d = np.array([self.use_world_landmarks and h.world_landmarks is not None for h in hands])
        out, errors = [None] * len(hands), np.zeros(len(hands))
        for group in (True, False):
            index = np.flatnonzero(with_3d == group)
            if not len(index):
                continue
            if group not in self._refine_fits:
                self._refine_fits[group] = Fit2D.from_settings(self.hand_model, refine.energy_for(group),
                                                               dtype=REFINE_DTYPE)
            pick = torch.as_tensor(index)
            init = HandParameters(*(getattr(params, name)[pick.to(params.trans.device)] for name in PARAMETER_FIELDS))
            result = self._refine_fits[group].fit(
                keypoints_crop[pick], weights[pick], init=init, options=refine.options_for([sources[i] for i in index]),
                anchor_sigma=refine.anchor_sigma, pinhole=None if pinholes is None else pinholes[index],
                **(self._world_term([hands[i] for i in index], [transforms[i] for i in index],
                                    keypoints_crop[pick].numpy(), confidence[pick].numpy() > 0,
                                    None if cameras is None else cameras[index]) if group else {}))
            for row, i in enumerate(_split_hands(result.parameters())):
                out[index[row]] = i
            errors[index] = result.error_px.numpy()
        return out, errors

    def _world_term(self, hands: list[HandInput], transforms, keypoints_crop, usable, cameras=None) -> dict:
        """``Fit2D.fit``'s 3D term from the detector's world landmarks (mirrored with a left hand's crop;
        in the frame the fit works in, ``RefineSettings.world_for_fit`` of the hands' ``keypoints_crop``
        under their crops' pinhole ``cameras``), each keypoint weighted 1 / ``[refine] world_sigma_mm``^2;
        {} when no hand has them."""
        if not self.use_world_landmarks or all(h.world_landmarks is None for h in hands):
            return {}
        sigma_m = self.inference.refine.world_sigma_mm / 1000.0
        points = np.zeros((len(hands), kp.NUM_KEYPOINTS, 3))
        weights = np.zeros((len(hands), kp.NUM_KEYPOINTS))
        for i, (hand, transform) in enumerate(zip(hands, transforms)):
            if hand.world_landmarks is not None:
                world = np.asarray(hand.world_landmarks, np.float64)
                points[i] = world * ([-1.0, 1.0, 1.0] if transform.mirrored else 1.0)
                weights[i] = 1.0 / sigma_m ** 2
        points = self.inference.refine.world_for_fit(points, keypoints_crop, cameras, usable)
        return {"keypoints_3d": points, "weights_3d": weights}

    @torch.no_grad()
    def _result(self, hand: HandInput, transform: CropTransform, one, fit_error: float | None,
                pinhole: np.ndarray | None = None, view: np.ndarray | None = None) -> HandResult:
        """``one`` hand's output. ``pinhole``: the crop's camera the hand was fitted under (the refinement's);
        else ``view``, the crop's camera (``crop_pinholes``) of a hand fitted under the weak-perspective
        camera: its 3D is then turned by the ray to it (through its keypoints' centroid,
        ``camera.ray_rotation``) into the camera frame."""
        one = HandParameters(*(getattr(one, name).float().cpu() for name in PARAMETER_FIELDS))
        full_pose = one.pose.shape[1] == 45 != self.hand_model.num_pca_comps
        recon = HandDecoder(self._full_pose_hand_model() if full_pose else self.hand_model.cpu())(one)
        joints = recon.keypoints_3d[0].double().numpy()
        vertices = recon.vertices[0].double().numpy()
        turn = None if pinhole is not None or view is None else \
            ray_rotation(recon.keypoints_2d[0].double().numpy().mean(0, keepdims=True), np.asarray(view)[None])[0]
        global_orient = one.global_orient[0].numpy()
        if turn is not None:   # the crop's view of the hand, in the camera frame (root-relative: about the root)
            joints, vertices = joints @ turn.T, vertices @ turn.T
            global_orient = matrix_to_axis_angle(torch.as_tensor(turn @ one.rotation[0].double().numpy())[None])[0]
        if pinhole is None:
            keypoints_2d, vertices_2d = recon.keypoints_2d[0], recon.vertices_2d[0]
        else:   # the refinement's camera: the photo's pinhole through this crop
            camera = (one.scale.double(), one.trans.double(), torch.as_tensor(pinhole[None], dtype=torch.float64))
            keypoints_2d = pinhole_project(recon.keypoints_3d.double(), *camera)[0]
            vertices_2d = pinhole_project(recon.vertices.double(), *camera)[0]
        keypoints_2d = transform.to_image(keypoints_2d.double().numpy())
        vertices_2d = transform.to_image(vertices_2d.double().numpy())
        if transform.mirrored:  # the network saw a right hand: mirror 3D results back to the left hand
            joints[:, 0] *= -1
            vertices[:, 0] *= -1
        return HandResult(
            handedness=hand.handedness, score=float(hand.score), crop=transform, keypoints_2d=keypoints_2d,
            joints_3d=joints, vertices=vertices, vertices_2d=vertices_2d,
            params={"global_orient": np.asarray(global_orient, np.float32), "betas": one.betas[0].numpy(),
                    "pose": one.pose[0].numpy(),
                    "pose_space": "full" if full_pose else "pca",
                    "note": "parameters of the (mirrored, for left hands) right hand the network saw; pose: "
                            + ("45 finger axis-angles relative to the model's mean pose" if full_pose
                               else f"{self.hand_model.num_pca_comps} PCA coefficients of the hand model")},
            camera={"trans_crop_px": one.trans[0].numpy(), "scale_px_per_m": float(one.scale[0]),
                    "crop_size": transform.out_size,
                    **({"projection": "x = s * Pi(R (J - J_root)) + t in crop pixels; crop_transform maps to the "
                                      "image"} if pinhole is None and turn is None else
                       {"view_rotation": turn,
                        "projection": "x = s * Pi(V^T R (J - J_root)) + t in crop pixels, V = view_rotation: the "
                                      "crop shows the hand as seen along the ray to its keypoints' centroid, and R "
                                      "(params global_orient) is V times the rotation fitted in the crop; "
                                      "crop_transform maps to the image"}
                       if pinhole is None else
                       {"pinhole_crop_px": pinhole,
                        "projection": "x = c + (s * Pi(P) + t - c) / (1 + s * P_z / f), P = R (J - J_root), in crop "
                                      "pixels, (f, c) = pinhole_crop_px: the photo's camera through the crop, the "
                                      "root at depth f / s; crop_transform maps to the image"})},
            method=self.method if not (self.method == "network" and self.refine) else "network+fit2d",
            fit_error_px=fit_error,
            extras={"keypoints_source": hand.source, "variant": self.variant,
                    "detector": self._detector_block(hand, transform, view)})

    def _detector_block(self, hand: HandInput, transform: CropTransform, view) -> dict | None:
        """The JSON's ``detector`` block: all the detector said (``Detection.to_dict``), and its world
        landmarks in the photo's camera frame (``world_landmarks_camera_m``: ``camera.world_landmarks_in_camera``
        under the crop's camera ``view``, as the pinhole refinement takes them)."""
        if hand.detection is None:
            return None
        block = hand.detection.to_dict()
        if hand.world_landmarks is not None and view is not None:
            flip = np.array([-1.0, 1.0, 1.0]) if transform.mirrored else np.ones(3)   # the crop's mirror and back
            keys = transform.to_crop(np.asarray(hand.detection.keypoints_2d, np.float64))
            world = np.asarray(hand.world_landmarks, np.float64) * flip
            if self.inference.refine.world_frame == "ray":
                world = world_landmarks_in_camera(world[None], keys[None], np.asarray(view, np.float64)[None])[0]
            world = world * flip
            block["world_landmarks_camera_m"] = np.round(world, 6).tolist()
        return block


    def _full_pose_hand_model(self):
        """The hand model decoding 45 finger axis-angles (a refinement in the "full" pose space)."""
        if self._full_pose_model is None:
            self._full_pose_model = hand_model_from_config(self.config, path=str(self.hand_model.path), num_pca_comps=45,
                                                           num_betas=self.hand_model.num_betas)
        return self._full_pose_model


def _split_hands(params) -> list:
    """A batch of ``HandParameters`` -> one per hand (float32, their pose widths may then differ)."""
    return [HandParameters(*(getattr(params, name)[i:i + 1].to(torch.float32) for name in PARAMETER_FIELDS))
            for i in range(params.trans.shape[0])]


def write_outputs(out_dir: Path, stem: str, image, results: list[HandResult], faces, record: dict,
                  space: str = "root", extra_files=()) -> dict:
    """JSON, overlay PNG and OBJ files of one image, each written atomically; OBJ vertices in
    ``space`` "root" (root-relative) or "camera" (the camera frame, ``fit.perspective.place_results``)."""
    if space not in SPACES:
        raise ValueError(f"space: expected one of {', '.join(SPACES)}, got {space!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for i, res in enumerate(results):
        hand_faces = faces[:, ::-1] if res.crop.mirrored else faces  # a mirrored mesh reverses its winding
        where = "root-relative" if space == "root" else "in the camera frame (x right, z forward)"
        obj = write_obj(out_dir / f"{stem}_hand{i}.obj",
                        res.vertices if space == "root" else res.extras["vertices_camera"], hand_faces,
                        comment=f"wildhands: {res.handedness} hand, metres, {where}, camera-aligned (y down)")
        files.append(obj.name)
    files += list(extra_files)
    if image is not None:
        overlay = draw_hand_overlay(image, [(r.vertices_2d, r.vertices, faces, r.keypoints_2d) for r in results])
        import cv2

        ok, payload = cv2.imencode(".png", overlay[..., ::-1])
        with atomic_path(out_dir / f"{stem}_overlay.png") as tmp:
            tmp.write_bytes(payload.tobytes())
        files.append(f"{stem}_overlay.png")
    record = {**record, "hands": [r.to_dict() for r in results], "files": files}
    write_json(out_dir / f"{stem}.json", record)
    return record


def default_camera_fit(export: str | None, space: str) -> str:
    """The camera placement when none is asked for: the perspective pose fit ("pose", about 80-200
    ms of CPU per hand, benchmarks/bench_camera_fit.py) when the camera-space hand is what the user takes away (a glTF export,
    camera-space OBJ files); else the translation alone ("translation", under a millisecond)."""
    return "pose" if export is not None or space == "camera" else "translation"


def predict_paths(inputs, out_dir, checkpoint=None, method: str = "network", refine: bool = True,
                  keypoints=None, bbox=None, device: str = "cpu", progress: bool = True, log=print,
                  focal=None, fov=None, export=None, space: str = "root", principal=None,
                  camera_fit: str | None = None, config_overrides: dict | None = None) -> dict:
    """Run the pipeline over files and folders; returns {"processed": n, "failed": [...], "hands": n}.

    Hands are placed in each photo's camera (``focal`` px or horizontal ``fov`` degrees, else
    EXIF, else a default: ``camera_space``), ``camera_fit`` saying what the perspective fit refits
    (``fit.perspective.place_results``: "pose", "translation" or "none"; default
    ``default_camera_fit``); ``export="glb"`` adds ``DIR/<stem>.glb``; ``config_overrides`` as
    ``Predictor``'s (e.g. ``{"refine.projection": "weak"}``)."""
    from tqdm.auto import tqdm

    if export is not None and export not in EXPORTS:
        raise ValueError(f"--export: expected one of {', '.join(EXPORTS)}, got {export!r}")
    if space not in SPACES:
        raise ValueError(f"--space: expected one of {', '.join(SPACES)}, got {space!r}")
    check_camera_flags(focal, fov, principal)
    camera_fit = camera_fit or default_camera_fit(export, space)
    if camera_fit not in CAMERA_FITS:
        raise ValueError(f"--camera-fit: expected one of {', '.join(CAMERA_FITS)}, got {camera_fit!r}")
    out_dir = Path(out_dir)
    predictor = Predictor(checkpoint, method=method, refine=refine, device=device, config_overrides=config_overrides)
    camera_settings = PerspectiveSettings.from_config(predictor.config)     # [camera_fit]
    if predictor.model is not None and "rgb" in predictor.variant:
        log(f"note: {RGB_NOTE}")
    given = parse_keypoints_json(keypoints) if keypoints else None
    paths = list_images(inputs)
    summary = {"processed": 0, "failed": [], "hands": 0, "images": len(paths)}
    for path in tqdm(paths, desc="predict", unit="image", disable=not progress or len(paths) < 2):
        record = {"image": str(path), "method": method, "checkpoint": str(predictor.checkpoint or "")}
        try:
            image = read_image(path)
            record.update(width=int(image.shape[1]), height=int(image.shape[0]))
            hands = given.get(path.name, []) if isinstance(given, dict) else given
            intrinsics = photo_intrinsics(path, image.shape[1], image.shape[0], focal, fov, principal)
            results = predictor.predict(image, hands=hands, bbox=bbox, intrinsics=intrinsics)
            if not results:
                record["message"] = "no hand found"
            place_results(results, intrinsics, predictor.hand_model, camera_fit, camera_settings)
            record["camera_intrinsics"] = intrinsics.to_dict()
            extra_files = []
            if export == "glb" and results:
                extra_files.append(export_photo(out_dir / f"{path.stem}.glb", results, predictor.hand_model,
                                                intrinsics, path.name).name)
            write_outputs(out_dir, path.stem, image, results, predictor.hand_model.faces, record, space, extra_files)
            summary["processed"] += 1
            summary["hands"] += len(results)
            if not results:
                log(f"{path}: no hand found")
        except (ImageError, ValueError) as err:
            summary["failed"].append({"image": str(path), "error": str(err)})
            write_json(out_dir / f"{path.stem}.json", {**record, "error": str(err), "hands": []})
            log(f"{path}: skipped: {err}")
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="wildhands predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="images and folders of images")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--checkpoint", default=None, help=f"network checkpoint (default: newest of "
                                                           f"{DEFAULT_CHECKPOINT.name} and run_all.sh's)")
    parser.add_argument("--method", choices=METHODS, default="network",
                        help="network (default) or fit2d: the 2D-fit baseline alone")
    parser.add_argument("--no-refine", action="store_true", help="network prediction without the 2D-fit refinement")
    parser.add_argument("--keypoints", default=None, help="JSON of known 2D keypoints instead of the detector")
    parser.add_argument("--bbox", nargs=4, type=float, metavar=("X", "Y", "W", "H"), default=None,
                        help="look for the hand in this box only")
    parser.add_argument("--device", default="cpu")
    camera = parser.add_mutually_exclusive_group()
    camera.add_argument("--focal", type=float, default=None, metavar="PX",
                        help="focal length in pixels (default: from EXIF, else a phone's 26 mm-equivalent lens)")
    camera.add_argument("--fov", type=float, default=None, metavar="DEG", help="horizontal field of view in degrees")
    parser.add_argument("--principal", nargs=2, type=float, default=None, metavar=("X", "Y"),
                        help="principal point in pixels (default: the image centre)")
    parser.add_argument("--export", choices=EXPORTS, default=None,
                        help="glb: also write DIR/<stem>.glb, rigged hands and the camera")
    parser.add_argument("--camera-fit", choices=CAMERA_FITS, default=None,
                        help="placing hands in the camera: pose (rotation, translation and pose fitted under "
                             "perspective to keypoints_2d; the default with --export or --space camera), "
                             "translation (the translation alone, the pose fixed; the default otherwise) or none "
                             "(the weak-perspective placement)")
    parser.add_argument("--space", choices=SPACES, default="root",
                        help="OBJ vertices root-relative (default) or in the camera frame")
    args = parser.parse_args(argv)
    try:
        summary = predict_paths(args.inputs, args.out, args.checkpoint, args.method, not args.no_refine,
                                args.keypoints, args.bbox, args.device,
                                log=lambda msg: print(msg, file=sys.stderr), focal=args.focal, fov=args.fov,
                                export=args.export, space=args.space, principal=args.principal,
                                camera_fit=args.camera_fit)
    except (FileNotFoundError, ValueError) as err:
        print(f"wildhands predict: {err}", file=sys.stderr)
        return 2
    print(f"{summary['processed']}/{summary['images']} images processed, {summary['hands']} hands, "
          f"{len(summary['failed'])} failed; outputs in {args.out}")
    return 0 if summary["processed"] > 0 else 1
