"""Videos to smooth hand tracks: ``python -m wildhands predict VIDEO --out DIR``.

Owns the video pipeline and its outputs. Frames come from an MP4/AVI/MOV file (OpenCV) or, with
``--sequence``, a folder of numbered images. MediaPipe runs in tracking mode (``static_image_mode``
off: it follows the hands found in the previous frame); ``data.tracking`` matches hands across
frames into tracks (``track_id``, one side per track); each hand goes through the photo pipeline
(``app.predict.Predictor``: the paper's crop, the network) and then through time
(``fit.temporal``): offline, one batched fit per window of every track (one shape per track,
smooth pose, rotation and camera); online (``--online`` or ``[video] mode``), each frame's
refined estimate one-euro filtered as it comes. The smoothed hands are then placed in the camera
frame by frame, as photos' are (``--camera-fit``; the perspective pose fit with ``--export glb``,
each track warm-started from its previous frame: ``fit.perspective``).

Writes ``DIR/<stem>.jsonl`` (one line per input frame: its index, time, and every hand's fields
as ``predict`` writes them for photos, plus ``track_id``; a frame that cannot be read has its
``error``, a frame without hands an empty list), ``DIR/<stem>_overlay.mp4`` (the meshes drawn,
one frame per input frame) and ``DIR/<stem>_track<k>.npz`` per track (frame indices, parameters,
joints, vertices and 2D keypoints per frame; the camera-space placement and, with the pose fit, its
parameters: the animation of ``--export glb``'s ``<stem>.glb``). Every file is written whole or not at all.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from wildhands.app.drawing import draw_hand_overlay
from wildhands.app.export_gltf import export_video
from wildhands.app.predict import EXPORTS, HandInput, HandResult, Predictor, default_camera_fit, default_checkpoint
from wildhands.config import load_profile, setting
from wildhands.data.augment import DetectorNoise, resize_image
from wildhands.data.crops import CropTransform, crop_box, hand_transform
from wildhands.data.detector import Detection, detections_from_result, tight_box
from wildhands.data.images import IMAGE_SUFFIXES, ImageError, read_image
from wildhands.data.tracking import HandTracker
from wildhands.fileio import _to_builtin, atomic_path
from wildhands.fit.fit2d import Fit2D
from wildhands.fit.perspective import MODES as CAMERA_FITS
from wildhands.fit.perspective import PerspectiveSettings, carried_correction, place_results
from wildhands.fit.refine import RefineSettings
from wildhands.fit.temporal import MODES, OnlineSmoother, TemporalFit, TemporalSettings, TrackObservations
from wildhands.hand.camera import CROP_SCALE, CROP_SIZE, axis_angle_to_matrix, matrix_to_axis_angle
from wildhands.hand.camera_space import Intrinsics, check_camera_flags, photo_intrinsics
from wildhands.hand.parameters import HandParameters, VectorLayout

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov")
DEFAULT_SEQUENCE_FPS = 30.0
MAX_READ_FAILURES = 10      # consecutive unreadable frames before a video is taken to have ended


def is_video(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def wants_video(argv: list[str]) -> bool:
    """Whether ``predict``'s arguments ask for the video pipeline: ``--sequence``, or a video input."""
    return "--sequence" in argv or any(is_video(arg) for arg in argv if not arg.startswith("-"))


# ----------------------------------------------------------------------------- frames in

class FrameSource:
    """The frames of a video file or a folder of numbered images, readable more than once.

    ``frames()`` yields (index, RGB image or None, error or None), one per input frame.
    """

    def __init__(self, path, sequence: bool = False, fps: float | None = None):
        self.path = Path(path)
        self.sequence = sequence
        if sequence:
            if not self.path.is_dir():
                raise ValueError(f"--sequence {self.path}: not a folder of numbered frames")
            self.files = numbered_frames(self.path)
            self.fps, self.count = float(fps or DEFAULT_SEQUENCE_FPS), len(self.files)
        else:
            if not self.path.is_file():
                raise ValueError(f"{self.path}: no such video file")
            if not is_video(self.path):
                raise ValueError(f"{self.path}: not a video file ({', '.join(VIDEO_SUFFIXES)}); a folder of "
                                 "numbered frames needs --sequence")
            import cv2

            capture = cv2.VideoCapture(str(self.path))
            if not capture.isOpened():
                raise ValueError(f"{self.path}: OpenCV cannot open this video")
            native = capture.get(cv2.CAP_PROP_FPS)
            self.fps = float(fps or (native if native and np.isfinite(native) and native > 0 else 30.0))
            self.count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            capture.release()
        self.stem = self.path.stem if not sequence else self.path.name

    def frames(self):
        if self.sequence:
            for index, path in enumerate(self.files):
                try:
                    yield index, read_image(path), None
                except (ImageError, ValueError) as err:
                    yield index, None, f"{path.name}: {err}"
            return
        yield from _video_frames(self.path, self.count)


def numbered_frames(folder: Path) -> list[Path]:
    """The images of ``folder`` ordered by the last number in their names."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    numbered = [(int(m[-1]), p) for p in files if (m := re.findall(r"\d+", p.stem))]
    if not numbered:
        raise ValueError(f"--sequence {folder}: no numbered images ({', '.join(IMAGE_SUFFIXES)}) in it")
    return [p for _, p in sorted(numbered, key=lambda item: (item[0], item[1].name))]


def _video_frames(path: Path, count: int):
    """Frames of a video; an undecodable frame gives an error entry, and decoding goes on."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    index, failures = 0, 0
    try:
        while failures < MAX_READ_FAILURES:
            ok, frame = capture.read()
            if ok and frame is not None:
                failures = 0
                yield index, np.ascontiguousarray(frame[..., ::-1]), None
            elif index < count:
                failures += 1
                yield index, None, f"frame {index}: OpenCV could not decode it"
            else:
                break
            index += 1
    finally:
        capture.release()


# ----------------------------------------------------------------------------- detection in tracking mode

class TrackingDetector:
    """MediaPipe Hands in tracking mode (``static_image_mode=False``): ``detect(rgb)`` ->
    ``data.detector.Detection`` list. One per video: it remembers the previous frame's hands."""

    def __init__(self, max_num_hands: int = 2, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5):
        import mediapipe as mp

        self._hands = mp.solutions.hands.Hands(static_image_mode=False, max_num_hands=int(max_num_hands),
                                               min_detection_confidence=float(min_detection_confidence),
                                               min_tracking_confidence=float(min_tracking_confidence),
                                               model_complexity=1)

    def detect(self, image_rgb: np.ndarray) -> list:
        result = self._hands.process(np.ascontiguousarray(image_rgb))
        return detections_from_result(result, image_rgb.shape[1], image_rgb.shape[0])

    def close(self) -> None:
        self._hands.close()


class KnownKeypoints:
    """A stand-in for the detector: given keypoints, one hand per frame ((T, 21, 2) image pixels,
    or a list with None where there is no hand), all of one ``side``; ``world``: (T, 21, 3) world
    landmarks (metres, the hand as seen along the ray to it) to go with them, as MediaPipe's (None: none)."""

    def __init__(self, keypoints, side: str = "right", score: float = 0.95, world=None):
        self.keypoints, self.side, self.score, self.world, self.calls = keypoints, side, float(score), world, 0

    def detect(self, image_rgb: np.ndarray) -> list:
        keys = self.keypoints[self.calls]
        world = None if self.world is None else np.asarray(self.world[self.calls], np.float64)
        self.calls += 1
        if keys is None:
            return []
        keys = np.asarray(keys, np.float64)
        return [Detection(keys, self.side, self.score, tight_box(keys), world_landmarks=world)]


# ----------------------------------------------------------------------------- per-frame records

@dataclass
class HandEntry:
    """One hand of one frame: its track, what the detector gave, and its estimate (None: none)."""
    track_id: int
    hand: HandInput
    width: int                            # of the frame, pixels
    crop: CropTransform | None = None     # the crop its estimate was made in (mirrored: a left hand)
    estimate: HandParameters | None = None   # per-frame parameters in that crop (offline: the network's)
    inputs: tuple | None = None           # offline, until the network runs: (crop or None, keypoints, confidence)
    result: HandResult | None = None      # the output


@dataclass
class FrameRecord:
    index: int
    shape: tuple | None = None            # (H, W) of the frame; None when it could not be read
    error: str | None = None
    hands: list = field(default_factory=list)
    camera: dict | None = None            # the frame's intrinsics (``hand.camera_space``)


def to_track_frame(one: HandParameters, crop: CropTransform, left: bool) -> np.ndarray:
    """Packed ``Fit2D`` parameters (P,) of a per-frame estimate (a batch of one, in the crop
    ``crop``) in its track's frame: image pixels, mirrored for a left track (whose crops are mirrored)."""
    trans = crop.to_image(one.trans.double().cpu().numpy().reshape(1, 2))[0]
    if left:
        trans[0] = crop.image_width - 1 - trans[0]
    log_scale = np.log(float(one.scale.reshape(-1)[0]) / crop.zoom)
    orient = matrix_to_axis_angle(one.rotation.double().cpu()).numpy().reshape(-1)
    layout = VectorLayout(one.betas.shape[1], log_scale=True)
    packed = np.empty(layout.size(one.pose.shape[1]))
    packed[layout.rotation], packed[layout.trans], packed[layout.scale] = orient, trans, log_scale
    packed[layout.betas], packed[layout.pose] = one.betas.double().cpu().numpy(), one.pose.double().cpu().numpy()
    return packed


def to_crop_parameters(packed: np.ndarray, crop, left: bool, num_betas: int) -> HandParameters:
    """The inverse of ``to_track_frame`` for the crop ``crop``: a batch of one, float32."""
    orient, trans, scale, betas, pose = VectorLayout(num_betas, log_scale=True).split(np.asarray(packed, np.float64))
    trans = np.array(trans, np.float64)
    if left:
        trans[0] = crop.image_width - 1 - trans[0]
    as_tensor = lambda a: torch.as_tensor(np.asarray(a, np.float32))[None]  # noqa: E731
    return HandParameters(axis_angle_to_matrix(as_tensor(orient).double()).float(),
                          as_tensor(crop.to_crop(trans[None])[0]), as_tensor(scale * crop.zoom),
                          as_tensor(betas), as_tensor(pose))


def crop_for(hand: HandInput, shape: tuple, left: bool):
    """The paper's 2.2 l crop of a detected hand, mirrored for a left track."""
    points = np.asarray(hand.keypoints_2d, np.float64)
    return hand_transform(shape, np.nan_to_num(points), np.isfinite(points).all(1), mirror=left)


def track_observations(entries: list, first: int, last: int, left: bool, sigma_320: np.ndarray,
                       world_sigma_m: float, num_params: int, camera: Intrinsics | None = None,
                       refine=None, view: Intrinsics | None = None) -> TrackObservations:
    """A track's ``TrackObservations`` from its (frame index, ``HandEntry``) pairs, frames first..last;
    ``camera``: the video's, for the fit under its pinhole camera (None: the weak-perspective camera,
    whose results are turned into the frame of the video's camera ``view``); the world landmarks in the
    frame the fit works in, as ``refine`` (``RefineSettings.world_for_fit``) takes them."""
    frames = last - first + 1
    points, weights = np.zeros((frames, 21, 2)), np.zeros((frames, 21))
    init = np.full((frames, num_params), np.nan)
    world, world_weights = np.full((frames, 21, 3), np.nan), np.zeros((frames, 21))
    for index, entry in entries:
        t = index - first
        image_points = np.array(entry.hand.keypoints_2d, np.float64)
        if left:
            image_points[:, 0] = entry.width - 1 - image_points[:, 0]
        zoom = CROP_SIZE / crop_box(np.nan_to_num(image_points), None, CROP_SCALE)[2]
        points[t], weights[t] = image_points, np.asarray(entry.hand.confidence) * (zoom / sigma_320) ** 2
        if entry.estimate is not None and entry.crop.mirrored == left:
            init[t] = to_track_frame(entry.estimate, entry.crop, left)
        if entry.hand.world_landmarks is not None and world_sigma_m > 0:
            world[t] = np.asarray(entry.hand.world_landmarks) * ([-1.0, 1.0, 1.0] if left else 1.0)
            world_weights[t] = 1.0 / world_sigma_m ** 2
    lens = camera if camera is not None else view
    lens_px = None if lens is None else \
        np.repeat(np.array([[lens.focal, lens.width - 1 - lens.cx if left else lens.cx, lens.cy]]), frames, 0)
    seen = world_weights.any(1)
    if refine is not None and lens_px is not None and seen.any():
        world[seen] = refine.world_for_fit(world[seen], points[seen], lens_px[seen], weights[seen] > 0)
    pinhole = None if camera is None else lens_px
    return TrackObservations(points, weights, init, np.isfinite(init).all(1), world, world_weights, pinhole)


# ----------------------------------------------------------------------------- the pipeline

class VideoPredictor:
    """Per-frame detection, tracking and estimates, then the temporal fit (offline) or filter
    (online). ``detector``: anything with ``detect(rgb) -> [Detection]`` (default MediaPipe in
    tracking mode); ``mode``: one of ``fit.temporal.MODES`` (default: ``[video] mode``);
    ``video_settings``: ``[video]`` keys to override (``fit.temporal.TemporalSettings``); ``camera_fit``:
    how hands are placed in the camera (``fit.perspective.MODES``, default ``predict.default_camera_fit``
    without an export: the translation alone), after the smoothing, frame by frame (``place``)."""

    def __init__(self, checkpoint=None, mode: str | None = None, device: str = "cpu", detector=None,
                 config_overrides: dict | None = None, video_settings: dict | None = None,
                 focal: float | None = None, fov: float | None = None, camera_fit: str | None = None):
        self.predictor = Predictor(checkpoint or default_checkpoint(), device=device,
                                   config_overrides=config_overrides)
        name = str(setting(self.predictor.config, "", "profile"))   # the checkpoint's profile
        try:
            current = load_profile(name, config_overrides)
        except (FileNotFoundError, ValueError):   # a profile not among params/profiles/
            current = load_profile("quick", config_overrides)
        self.profile = current            # the profile as it is now: [video]
        self.settings = TemporalSettings.from_config(current, **{**(video_settings or {}),
                                                                 **({"mode": mode} if mode else {})})
        self.set_mode(self.settings.mode)
        self.hand_model = self.predictor.hand_model
        self.num_betas = self.hand_model.num_betas
        self._detector = detector
        self._smoothers: dict = {}
        self.fps = None                   # of the video being run
        check_camera_flags(focal, fov)
        self.camera = (focal, fov)        # --focal px / --fov degrees (else a phone's lens: camera_space)
        self.camera_fit = camera_fit or default_camera_fit(None, "root")
        if self.camera_fit not in CAMERA_FITS:
            raise ValueError(f"--camera-fit: expected one of {', '.join(CAMERA_FITS)}, got {self.camera_fit!r}")
        self.camera_settings = PerspectiveSettings.from_config(self.predictor.config)   # [camera_fit]
        self._carried: dict = {}          # track id -> the perspective fit's correction in its last frame
        self.warm_start = True            # False: every frame's pose fit from its own start (benchmarks)
        self.placement_cpu_s = 0.0        # process time spent placing hands in the camera (this run)

    @property
    def offline_pinhole(self) -> bool:
        """Whether the offline temporal fit projects by the video's pinhole camera, as the per-photo
        refinement does (``[refine] projection``; the network method only)."""
        return self.predictor.method == "network" and self.predictor.inference.refine.projection == "pinhole"

    def set_mode(self, mode: str) -> None:
        """Switch the smoothing mode (``fit.temporal.MODES``) of later runs."""
        self.settings = replace(self.settings, mode=mode)
        # offline: the temporal fit refines; online: the per-photo refinement, unless online_refine is off
        self.predictor.refine = mode == "per-frame" or (mode == "online" and self.settings.online_refine)

    @property
    def detector(self):
        if self._detector is None:
            self._detector = TrackingDetector(int(setting(self.profile, "video", "max_num_hands")))
        return self._detector

    def new_tracker(self) -> HandTracker:
        return HandTracker(int(setting(self.profile, "video", "max_missing")),
                           float(setting(self.profile, "video", "gate")))

    def frame(self, index: int, image: np.ndarray, tracker: HandTracker) -> FrameRecord:
        """Detect and track the hands of one frame; online and per frame, estimate them too
        (offline, their network inputs are kept for ``network_estimates``)."""
        record = FrameRecord(index, image.shape[:2])
        found = self.detector.detect(image)
        ids = tracker.update(index, [d.keypoints_2d for d in found], [d.handedness for d in found],
                             [d.score for d in found])
        sides = {t.track_id: t.side for t in tracker.active}
        for det, track_id in zip(found, ids):
            hand = HandInput.from_detection(det)
            hand.handedness = sides[track_id]
            entry = HandEntry(track_id, hand, image.shape[1])
            try:
                if self.settings.mode == "offline":
                    entry.crop, crop, keys, conf = self.predictor._prepare(image, hand, track_id)
                    size = self.predictor.inputs.input_size
                    entry.inputs = (resize_image(crop, size) if "rgb" in self.predictor.variant else None, keys, conf)
                else:
                    entry.result = self.predictor.predict(image, [hand], intrinsics=self.intrinsics(image.shape))[0]
                    entry.crop, entry.result.extras["track_id"] = entry.result.crop, track_id
            except ValueError as err:  # e.g. too few keypoints inside the frame
                record.error = f"track {track_id}: {err}"
            if self.settings.mode == "online" and entry.result is not None:
                entry.result = self._online(entry, image.shape[:2])
            record.hands.append(entry)
        if self.settings.mode != "offline":
            self.place(record)
        return record

    def place(self, record: FrameRecord) -> None:
        """The camera-frame fields of a frame's smoothed hands (``fit.perspective.place_results``, one
        batch: the frame's camera is shared). Frames are placed in order: with the pose fit, each
        track's hand starts from its weak-perspective solution corrected as the track's previous frame
        was (``carried_correction``), so that the fit takes few iterations and the track stays on one
        solution."""
        done = [e for e in record.hands if e.result is not None]
        if not done or record.shape is None:
            return
        started = time.process_time()
        intrinsics = self.intrinsics(record.shape)
        results = [e.result for e in done]
        place_results(results, intrinsics, self.hand_model, self.camera_fit, self.camera_settings,
                      [self._carried.get(e.track_id) if self.warm_start else None for e in done])
        for entry in done:
            self._carried[entry.track_id] = carried_correction(self.hand_model, entry.result)
        self.placement_cpu_s += time.process_time() - started

    def intrinsics(self, shape: tuple) -> Intrinsics:
        """The camera of a frame of ``shape`` (height, width, ...): --focal / --fov, else the default lens."""
        return photo_intrinsics(None, shape[1], shape[0], *self.camera)

    def network_estimates(self, records: list, chunk: int = 64) -> None:
        """Offline: the network on every kept hand, ``chunk`` hands per batch (faster than per frame)."""
        entries = [e for r in records for e in r.hands if e.inputs is not None]
        for lo in range(0, len(entries), chunk):
            part = entries[lo:lo + chunk]
            crops = np.stack([e.inputs[0] for e in part]) if part[0].inputs[0] is not None else [None] * len(part)
            params, _ = self.predictor._parameters(
                crops, torch.as_tensor(np.stack([e.inputs[1] for e in part])),
                torch.as_tensor(np.stack([e.inputs[2] for e in part])), [e.hand for e in part], [e.crop for e in part])
            for entry, one in zip(part, params):
                entry.estimate, entry.inputs = one, None

    def _online(self, entry: HandEntry, shape: tuple) -> HandResult:
        left = entry.hand.handedness == "left"
        r = entry.result
        rotation = axis_angle_to_matrix(torch.as_tensor(np.asarray(r.params["global_orient"], np.float64))[None])
        if r.camera.get("view_rotation") is not None:   # back to the crop's view, which the smoothing works in
            rotation = torch.as_tensor(np.asarray(r.camera["view_rotation"]).T) @ rotation
        one = HandParameters(rotation,
                             torch.as_tensor(np.asarray(r.camera["trans_crop_px"]))[None],
                             torch.as_tensor([float(r.camera["scale_px_per_m"])]),
                             torch.as_tensor(np.asarray(r.params["betas"]))[None],
                             torch.as_tensor(np.asarray(r.params["pose"]))[None])
        packed = to_track_frame(one, r.crop, left)
        smoother = self._smoothers.get(entry.track_id)
        if smoother is None or smoother.layout.size(smoother.num_pose) != len(packed):
            num_pose = len(packed) - VectorLayout(self.num_betas, log_scale=True).pose.start
            smoother = OnlineSmoother(self.settings, self.fps, self.num_betas, num_pose)
            self._smoothers[entry.track_id] = smoother
        return self.result(entry, smoother(packed), shape, "online")

    def result(self, entry: HandEntry, packed: np.ndarray, shape: tuple, method: str) -> HandResult:
        """The ``HandResult`` of a hand from its smoothed track-frame parameters."""
        left = entry.hand.handedness == "left"
        crop = entry.crop if entry.crop is not None and entry.crop.mirrored == left \
            else crop_for(entry.hand, shape, left)
        params = to_crop_parameters(packed, crop, left, self.num_betas)
        # online: the per-frame refinement's camera (its hands smoothed); offline: the temporal fit's
        (camera,) = self.predictor.crop_pinholes(shape, [crop], self.intrinsics(shape))
        fitted_under = self.offline_pinhole if method == "offline" else self.predictor.projects_by_pinhole
        out = self.predictor._result(entry.hand, crop, params, None, camera if fitted_under else None, camera)
        seen = np.isfinite(entry.hand.keypoints_2d).all(1)
        out.fit_error_px = float(np.linalg.norm(out.keypoints_2d - entry.hand.keypoints_2d, axis=1)[seen].mean()
                                 * crop.zoom)
        out.method = f"network+temporal ({method})"
        out.extras["track_id"] = entry.track_id
        return out

    def run(self, source: FrameSource, progress: bool = True, detector=None) -> tuple[list, list]:
        """(one ``FrameRecord`` per input frame, the tracks) with every estimate smoothed. ``detector``:
        this run's (a fresh one per video: MediaPipe's tracking and ``KnownKeypoints`` keep state);
        default the one given at construction, else a new MediaPipe one after the first run."""
        from tqdm.auto import tqdm

        if isinstance(self._detector, TrackingDetector) and (detector is not None or self.fps is not None):
            self._detector.close()      # MediaPipe remembers the last video's hands
            self._detector = None
        if detector is not None:
            self._detector = detector
        self.fps, self._smoothers, self._carried, self.placement_cpu_s = source.fps, {}, {}, 0.0
        tracker = self.new_tracker()
        records = []
        with tqdm(total=source.count or None, desc=f"{source.stem} ({self.settings.mode})", unit="frame",
                  disable=not progress) as bar:
            for index, image, error in source.frames():
                try:
                    records.append(FrameRecord(index, None, error) if image is None
                                   else self.frame(index, image, tracker))
                    if image is not None:
                        records[-1].camera = self.intrinsics(image.shape).to_dict()
                except ValueError as err:
                    records.append(FrameRecord(index, image.shape[:2], f"frame {index}: {err}"))
                bar.update(1)
        tracks = tracker.finish()
        if self.settings.mode == "offline":
            self.network_estimates(records)
            self.smooth_offline(records, tracks)
            for record in records:
                self.place(record)
        return records, tracks

    def temporal_fit(self, with_3d: bool = False) -> TemporalFit:
        """The offline fit with the refinement's priors, anchor and robust scale: for tracks with the
        detector's world landmarks (``with_3d``) in the pose space and priors the per-photo refinement
        gives such hands (``[refine.with_3d]``, 45-D), else in the PCA pose space."""
        refine = RefineSettings.from_config(self.predictor.config)
        energy = refine.energy_for(True) if with_3d else replace(refine.energy_for(False), pose_space="pca")
        return TemporalFit(Fit2D.from_settings(self.hand_model, energy), self.settings, refine.anchor_sigma,
                           refine.robust)

    def smooth_offline(self, records: list, tracks: list) -> None:
        """Every hand's estimate replaced by its track's temporal fit (frames without an estimate
        of their own get one from the fit)."""
        by_track, shapes = {}, {r.index: r.shape for r in records}
        for record in records:
            for entry in record.hands:
                by_track.setdefault(entry.track_id, []).append((record.index, entry))
        sides = {t.track_id: t.side for t in tracks}
        config = self.predictor.config
        refine = self.predictor.inference.refine
        sigma = refine.detector_sigma_px(DetectorNoise.from_config(config).keypoint_sigma_px)
        world_sigma = refine.world_sigma_mm / 1000.0
        num_params = VectorLayout(self.num_betas, log_scale=True).size(self.hand_model.num_pca_comps)
        jobs = []
        for track_id, entries in by_track.items():
            for _, entry in entries:
                entry.hand.handedness = sides[track_id]
            first, last = entries[0][0], entries[-1][0]
            view = self.intrinsics(shapes[first])
            obs = track_observations(entries, first, last, sides[track_id] == "left", sigma,
                                     world_sigma if self.predictor.use_world_landmarks else 0.0, num_params,
                                     view if self.offline_pinhole else None, refine, view)
            if np.isfinite(obs.init).all(1).any():
                jobs.append((entries, first, obs))
        for with_3d in (False, True):   # tracks with the detector's 3D landmarks: the refinement's 45-D space
            group = [job for job in jobs if with_3d == bool(np.any(job[2].world_weights > 0))]
            fits = self.temporal_fit(with_3d).fit_tracks([job[2] for job in group], self.fps) if group else []
            for (entries, first, _), fitted in zip(group, fits):
                for index, entry in entries:
                    entry.result = self.result(entry, fitted.params[index - first], shapes[index], "offline")


# ----------------------------------------------------------------------------- outputs

def first_hand_joints(records: list) -> np.ndarray:
    """(T, 21, 3) root-relative joints of each frame's first hand (NaN where none): one hand's path."""
    joints = np.full((len(records), 21, 3), np.nan)
    for t, record in enumerate(records):
        hands = [e.result for e in record.hands if e.result is not None]
        if hands:
            joints[t] = hands[0].joints_3d - hands[0].joints_3d[:1]
    return joints


def frame_line(record: FrameRecord, fps: float) -> dict:
    """The JSON line of one frame."""
    line = {"frame": record.index, "time_s": round(record.index / fps, 6),
            "hands": [e.result.to_dict() for e in record.hands if e.result is not None]}
    if record.camera is not None:
        line["camera_intrinsics"] = record.camera
    if record.error:
        line["error"] = record.error
    if record.shape is not None and not line["hands"] and not record.error:
        line["message"] = "no hand found"
    return line


def _overlay_frame(image, record: FrameRecord, size: tuple, faces) -> np.ndarray:
    """The frame with its meshes drawn (BGR, ``size`` (W, H)); black where the frame is unreadable."""
    import cv2

    if image is None:
        return np.zeros((size[1], size[0], 3), np.uint8)
    hands = [(e.result.vertices_2d, e.result.vertices, faces, e.result.keypoints_2d)
             for e in record.hands if e.result is not None]
    out = draw_hand_overlay(image, hands) if hands else image
    for entry in record.hands:
        if entry.result is not None:
            x, y = entry.result.keypoints_2d[0]
            cv2.putText(out, f"{entry.track_id}", (int(x) + 4, int(y) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (255, 255, 0), 1, cv2.LINE_AA)
    out = np.ascontiguousarray(out[..., ::-1])
    return out if out.shape[1::-1] == size else cv2.resize(out, size)


def write_overlay(path: Path, source: FrameSource, records: list, faces) -> int:
    """``path`` (MP4, the source's frame rate): one frame per record; returns the frames written."""
    import cv2

    first = next((r.shape for r in records if r.shape is not None), (240, 320))
    size = (int(first[1]), int(first[0]))
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), source.fps, size)
    if not writer.isOpened():
        raise ValueError(f"{path}: OpenCV cannot write MP4 here")
    written = 0
    try:
        frames = source.frames()
        for record in records:
            index, image, _ = next(frames, (record.index, None, None))
            writer.write(_overlay_frame(image if index == record.index else None, record, size, faces))
            written += 1
        writer.release()
        os.replace(partial, path)
    except BaseException:
        writer.release()
        partial.unlink(missing_ok=True)
        raise
    return written


def write_track(path: Path, track, records: list) -> None:
    """``DIR/<stem>_track<k>.npz``: per frame of the track with an estimate, its parameters
    (image pixels for the camera), joints and vertices (metres, root-relative, camera-aligned); where
    the frames were placed in the camera, ``translation_m`` (the root, metres, camera frame) and the
    ``camera_intrinsics`` (JSON), and where the perspective pose fit placed them, its parameters
    (``camera_global_orient``, ``camera_pose``, ``camera_pose_space``, ``camera_betas``: the rig of
    ``export_gltf.export_video``)."""
    rows = [(r, e.result) for r in records for e in r.hands
            if e.track_id == track.track_id and e.result is not None]
    if not rows:
        return
    res = [row[1] for row in rows]
    stack = lambda values: np.stack([np.asarray(v, np.float32) for v in values])  # noqa: E731
    arrays = {"frames": np.array([row[0].index for row in rows]), "track_id": np.array(track.track_id),
              "side": np.array(track.side), "betas": stack(r.params["betas"] for r in res),
              "global_orient": stack(r.params["global_orient"] for r in res),
              "pose": stack(r.params["pose"] for r in res),
              "trans_crop_px": stack(r.camera["trans_crop_px"] for r in res),
              "scale_crop_px_per_m": stack([r.camera["scale_px_per_m"]] for r in res)[:, 0],
              "crop_transform": np.array(json.dumps([r.crop.to_dict() for r in res])),
              "keypoints_2d": stack(r.keypoints_2d for r in res), "joints_3d": stack(r.joints_3d for r in res),
              "vertices": stack(r.vertices for r in res)}
    if all("translation_m" in r.extras for r in res) and rows[0][0].camera is not None:
        arrays["translation_m"] = np.stack([np.asarray(r.extras["translation_m"], np.float64) for r in res])
        arrays["camera_intrinsics"] = np.array(json.dumps(rows[0][0].camera, default=_to_builtin))
    fits = [r.extras.get("camera_space_fit") for r in res]
    if all(f is not None for f in fits) and len({f["pose_space"] for f in fits}) == 1:
        arrays.update(camera_global_orient=np.stack([np.asarray(f["global_orient"], np.float64) for f in fits]),
                      camera_pose=np.stack([np.asarray(f["pose"], np.float64) for f in fits]),
                      camera_betas=np.stack([np.asarray(f["betas"], np.float64) for f in fits]),
                      camera_pose_space=np.array(fits[0]["pose_space"]))
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def write_video_outputs(out_dir, source: FrameSource, records: list, tracks: list, faces) -> dict:
    """The JSONL, the overlay video and the track files; returns a summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / f"{source.stem}.jsonl") as tmp:
        with open(tmp, "w") as handle:
            for record in records:
                handle.write(json.dumps(frame_line(record, source.fps), default=_to_builtin) + "\n")
    written = write_overlay(out_dir / f"{source.stem}_overlay.mp4", source, records, faces)
    kept = [t for t in tracks if any(e.track_id == t.track_id and e.result is not None
                                     for r in records for e in r.hands)]
    track_files = [out_dir / f"{source.stem}_track{track.track_id}.npz" for track in kept]
    for track, path in zip(kept, track_files):
        write_track(path, track, records)
    return {"frames": len(records), "overlay_frames": written, "tracks": len(kept), "track_files": track_files,
            "failed_frames": sum(r.error is not None for r in records),
            "hands": sum(e.result is not None for r in records for e in r.hands)}


def predict_video(path, out_dir, checkpoint=None, sequence: bool = False, fps: float | None = None,
                  mode: str | None = None, device: str = "cpu", detector=None, progress: bool = True,
                  focal: float | None = None, fov: float | None = None, export: str | None = None,
                  camera_fit: str | None = None) -> dict:
    """The whole pipeline on one video (or ``sequence`` folder): outputs in ``out_dir``; a summary.
    ``export="glb"`` adds ``<stem>.glb``: the tracks as rigged hands animated over the frames, and
    the video's camera (``export_gltf.export_video``). ``camera_fit`` as photos' (default
    ``predict.default_camera_fit``: the perspective pose fit with an export)."""
    if export is not None and export not in EXPORTS:
        raise ValueError(f"--export: expected one of {', '.join(EXPORTS)}, got {export!r}")
    source = FrameSource(path, sequence, fps)
    video = VideoPredictor(checkpoint, mode, device, detector, focal=focal, fov=fov,
                           camera_fit=camera_fit or default_camera_fit(export, "root"))
    start = time.perf_counter()
    records, tracks = video.run(source, progress)
    seconds = time.perf_counter() - start
    summary = write_video_outputs(out_dir, source, records, tracks, video.hand_model.faces)
    camera = next((r.camera for r in records if r.camera is not None), None)
    if export == "glb" and summary["track_files"] and camera is not None:
        summary["glb"] = export_video(Path(out_dir) / f"{source.stem}.glb", summary["track_files"], video.hand_model,
                                      source.fps, len(records), Intrinsics.from_dict(camera), source.stem)
    return {**summary, "mode": video.settings.mode, "fps_processed": len(records) / max(seconds, 1e-9)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="wildhands predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="videos (.mp4, .avi, .mov), or folders of numbered frames "
                                                  "with --sequence")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--sequence", action="store_true", help="each input is a folder of numbered frames")
    parser.add_argument("--fps", type=float, default=None, help="frame rate (default: the video's; 30 for "
                                                                "--sequence)")
    parser.add_argument("--smoothing", choices=MODES, default=None,
                        help="offline: the temporal fit (default, [video] mode); online: causal one-euro "
                             "filter; per-frame: none, every frame as a photo")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--device", default="cpu")
    camera = parser.add_mutually_exclusive_group()
    camera.add_argument("--focal", type=float, default=None, metavar="PX", help="focal length in pixels (default: "
                        "a phone's 26 mm-equivalent lens)")
    camera.add_argument("--fov", type=float, default=None, metavar="DEG", help="horizontal field of view, degrees")
    parser.add_argument("--export", choices=EXPORTS, default=None,
                        help="glb: also write <stem>.glb, the tracks as rigged hands animated over the frames")
    parser.add_argument("--camera-fit", choices=CAMERA_FITS, default=None,
                        help="placing hands in the camera, frame by frame after the smoothing: pose (rotation, "
                             "translation and pose fitted under perspective; the default with --export), "
                             "translation (the translation alone; the default otherwise) or none")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"wildhands predict: options {' '.join(unknown)} apply to photos, not videos", file=sys.stderr)
        return 2
    done = 0
    for path in args.inputs:
        try:
            summary = predict_video(path, args.out, args.checkpoint, args.sequence, args.fps,
                                    args.smoothing, args.device, focal=args.focal, fov=args.fov,
                                    export=args.export, camera_fit=args.camera_fit)
        except (FileNotFoundError, ValueError) as err:
            print(f"wildhands predict: {err}", file=sys.stderr)
            continue
        done += 1
        print(f"{path}: {summary['frames']} frames ({summary['failed_frames']} failed), {summary['hands']} hands "
              f"in {summary['tracks']} tracks, {summary['fps_processed']:.1f} frames/s ({summary['mode']}); "
              f"outputs in {args.out}")
    return 0 if done else 1
