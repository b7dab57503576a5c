"""Video: per-frame against temporal (offline fit, online one-euro) on a synthetic video with known
truth, and stability on a real clip.

    python benchmarks/bench_video.py [--frames 150] [--seed 0] [--threads 2] [--photos DIR] [--world-landmarks]
                                     [--pinhole] [--camera-space] [--skip-synthetic] [--skip-real] [--write JSON]

Synthetic: ``data.synthetic_video`` renders one hand moving smoothly (pose, rotation, translation,
zoom) over a background; every frame's keypoints get detector-like noise (``data.augment``'s
``detector_keypoints`` with the profile's measured ``[noise]``, in the 320 crop of each frame, the
clean draw off), fed to the video pipeline in place of MediaPipe. Reported per mode: the root-
aligned and Procrustes-aligned 3D keypoint error (mm), the acceleration error (HMMR / VIBE,
root-relative joints, mm/frame^2), and frames per second of the pipeline (network, fit, decoding;
no detector, no drawing) with ``--threads`` torch threads (on a shared machine, 1 thread is the
honest figure: small batched solves lose more to thread contention than they gain), beside the
machine's load. Modes: per-frame (every frame as a photo: network and 2D-fit refinement), offline
(the temporal fit), online (the network's estimate one-euro filtered), online refined (the
estimate refined by the 2D fit first, ``[video] online_refine``). ``--world-landmarks`` runs the
synthetic video a second time with simulated MediaPipe world landmarks per frame (as
``bench_refinement_real_poses.py`` simulates them): the per-photo refinement and the offline fit
then work in the 45-D pose space of ``[refine.with_3d]``.

The synthetic video is drawn by the weak-perspective camera, and refined under it (``WEAK_FRAMES``).
``--pinhole`` runs it again with its keypoints drawn by the default lens of the 640x480 frame
(``pinhole_keypoints``: the same hands, each frame's root at the depth that keeps its size; the
frames themselves stay the weak-perspective renders, which the 2D network does not read), refined
under that camera as the profile does ([refine] projection), and offline also under the
weak-perspective camera for comparison (its hands then turned by the ray to them, ``camera.ray_rotation``).
With both flags, also the lens-drawn video with simulated world landmarks, each frame's seen along the
ray to its hand as MediaPipe's are (``simulated_world_landmarks``), which every mode turns back into
the frame it fits in ([refine] world_frame).

Real clip: a slow pan and zoom over a labelled real photo (read at run time from ``--photos``,
never copied), MediaPipe in tracking mode finding the hand in every frame. The hand does not
move, so its root-relative 3D joints should not either: reported per mode, their mean
acceleration (mm/frame^2, 0 for a perfectly stable output) and the 2D error against the photo's
labels (px of the photo). Skipped with a message when the folder is absent.

Camera space (``--camera-space``): the synthetic video's keypoints drawn by the default lens of its
640x480 frames (``pinhole_keypoints``), its offline tracks fitted under the weak-perspective camera
(turned by the ray to each hand, ``camera.ray_rotation``; under the profile's pinhole camera they would be
placed exactly) and placed in the camera frame by frame three ways: the translation alone (``--camera-fit
translation``, the default without an export), the perspective pose fit from each frame's own start,
and the same fit warm-started from the track's previous frame (``--export glb``'s default). Reported:
the RMS over the 21 keypoints of the perspective projection of ``joints_3d_camera`` from
``keypoints_2d`` (median, max over frames), the fit's iterations, the CPU milliseconds per hand-frame of
the placement (process time: run it with OMP_NUM_THREADS=1) and the mean acceleration of the
camera-space joints (mm/frame^2: how much the placed hand shakes).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from wildhands.app.video import KnownKeypoints, TrackingDetector, VideoPredictor, first_hand_joints
from wildhands.config import load_profile
from wildhands.data import augment
from wildhands.data.images import read_image
from wildhands.data.synthetic_video import detector_like_keypoints, render_video
from wildhands.eval.video_metrics import mean_acceleration, video_errors
from wildhands.fileio import write_json
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import WORLD_VIEW_KEYPOINT, ray_view_to_camera
from wildhands.hand.camera_space import Intrinsics, default_intrinsics, reprojection_rms_px
from wildhands.hand.hand_model import hand_model_from_config
from wildhands.paths import REAL_PHOTOS_DIR

MODES = ("per-frame", "offline", "online", "online refined")   # online: one-euro on the network's estimates
REPORT_ROWS = MODES + ("offline, weak camera",)
# camera-space placements of the offline tracks: (label, --camera-fit, warm start from the previous frame)
CAMERA_ROWS = (("translation", "translation", False), ("pose fit, cold", "pose", False),
               ("pose fit, warm", "pose", True))


class Frames:
    """An in-memory ``app.video.FrameSource``."""

    def __init__(self, images, fps: float, stem: str):
        self.images, self.fps, self.stem, self.count = images, fps, stem, len(images)

    def frames(self):
        for index, image in enumerate(self.images):
            yield index, image, None


# The synthetic video is drawn by the weak-perspective camera: its hands are refined under that camera
# (real footage, under the video's own: [refine] projection), seen through a lens so long (WEAK_FOCAL_PX)
# that no hand is off its axis, so that nothing is turned by the ray to it (camera.ray_rotation).
WEAK_FRAMES = {"refine.projection": "weak"}
WEAK_FOCAL_PX = 1e9


def run_mode(mode: str, source, detector, checkpoint=None, config_overrides: dict | None = None,
             focal: float | None = None):
    """(records, wall seconds of the pipeline) of one smoothing mode (``MODES``); ``focal``: px (None: the
    default lens)."""
    video = VideoPredictor(checkpoint, mode.split(" ")[0], detector=detector, config_overrides=config_overrides,
                           video_settings={"online_refine": "refined" in mode}, focal=focal)
    start = time.perf_counter()
    records, _ = video.run(source, progress=False)
    return records, time.perf_counter() - start


def machine_load() -> str:
    """The 1-minute load average against the cores: timings on a shared machine need it beside them."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def simulated_world_landmarks(truth: np.ndarray, seed: int, keypoints=None, camera: Intrinsics | None = None
                              ) -> np.ndarray:
    """(T, 21, 3) world landmarks as MediaPipe's, from the true root-relative joints (metres, camera
    axes): each frame's drawn as ``bench_refinement_real_poses.py`` draws them
    (``data.augment.world_landmarks``, the default ``WorldLandmarkNoise``), independently per frame;
    of hands drawn by the pinhole ``camera`` at ``keypoints`` (T, 21, 2), as seen along the ray to them
    (``camera.WORLD_VIEW_KEYPOINT``), as MediaPipe sees a hand."""
    rng = np.random.default_rng(seed + 1000)
    seen = np.asarray(truth, np.float64) - truth[:, :1]
    if camera is not None:
        pinhole = np.tile([camera.focal, camera.cx, camera.cy], (len(seen), 1))
        seen = ray_view_to_camera(seen, keypoints[:, WORLD_VIEW_KEYPOINT], pinhole, inverse=True)
    return np.stack([augment.world_landmarks(joints, rng, augment.WorldLandmarkNoise()) for joints in seen])


def pinhole_keypoints(video, camera: Intrinsics) -> np.ndarray:
    """(T, 21, 2) the synthetic video's hands as the pinhole camera ``camera`` sees them: each frame's
    root at depth f / s on the ray through its weak-perspective image (so the hand is drawn as large),
    its camera-frame 3D as rendered. Off the optical axis, the view along the ray differs from the
    weak-perspective drawing (up to about 20 degrees away in a 640x480 frame of the default lens)."""
    focal, centre = camera.focal, np.array([camera.cx, camera.cy])
    depth = focal / np.asarray(video.scale, np.float64)
    root = np.concatenate([(video.keypoints_2d[:, kp.ROOT] - centre) * (depth / focal)[:, None], depth[:, None]], 1)
    points = root[:, None] + (video.keypoints_3d - video.keypoints_3d[:, kp.ROOT:kp.ROOT + 1])
    return centre + focal * points[..., :2] / points[..., 2:]


def synthetic(args, config, hand_model, world_landmarks: bool = False, pinhole: bool = False) -> dict:
    """Per mode, the errors and frames/s on the synthetic video (``world_landmarks``: with simulated ones;
    ``pinhole``: its keypoints drawn by the default lens (``pinhole_keypoints``), refined under it, and
    offline also under the weak-perspective camera)."""
    video = render_video(hand_model, config, frames=args.frames, seed=args.seed, width=640, height=480,
                         side=args.side)
    height, width = video.frames.shape[1:3]
    keypoints = pinhole_keypoints(video, default_intrinsics(width, height)) if pinhole else video.keypoints_2d
    noisy = detector_like_keypoints(keypoints, (height, width), config, args.seed)
    truth = video.keypoints_3d - video.keypoints_3d[:, :1]
    camera = default_intrinsics(width, height) if pinhole else None
    world = simulated_world_landmarks(truth, args.seed, keypoints, camera) if world_landmarks else None
    report = {}
    runs = [(mode, mode, None, None) if pinhole else (mode, mode, WEAK_FRAMES, WEAK_FOCAL_PX) for mode in MODES]
    runs += [("offline, weak camera", "offline", WEAK_FRAMES, None)] if pinhole else []
    for name, mode, overrides, focal in runs:
        records, seconds = run_mode(mode, Frames(video.frames, video.fps, "synthetic"),
                                    KnownKeypoints(noisy, video.side, world=world), args.checkpoint, overrides, focal)
        report[name] = {**video_errors(first_hand_joints(records), truth), "frames_per_s": len(records) / seconds}
    report["truth_acceleration_mm_per_frame2"] = 1000 * mean_acceleration(truth)
    report["machine"] = machine_load()
    return report


def camera_space(args, config, hand_model) -> dict:
    """Per ``CAMERA_ROWS`` placement of the synthetic video's offline track: reprojection, iterations,
    CPU ms per hand-frame, camera-space jitter."""
    video = render_video(hand_model, config, frames=args.frames, seed=args.seed, width=640, height=480,
                         side=args.side)
    height, width = video.frames.shape[1:3]
    keypoints = pinhole_keypoints(video, default_intrinsics(width, height))
    noisy = detector_like_keypoints(keypoints, (height, width), config, args.seed)
    report = {}
    for label, fit, warm in CAMERA_ROWS:
        predictor = VideoPredictor(args.checkpoint, "offline", detector=KnownKeypoints(noisy, video.side),
                                   camera_fit=fit, config_overrides=WEAK_FRAMES)
        predictor.warm_start = warm
        records, _ = predictor.run(Frames(video.frames, video.fps, "synthetic"), progress=False)
        placed = [(Intrinsics.from_dict(r.camera), e.result) for r in records for e in r.hands[:1]
                  if e.result is not None]
        rms = np.array([reprojection_rms_px(camera.project(h.extras["joints_3d_camera"]), h.keypoints_2d)
                        for camera, h in placed])
        joints = np.stack([h.extras["joints_3d_camera"] for _, h in placed])
        iterations = [h.extras.get("camera_space_fit", {}).get("iterations", 0) for _, h in placed]
        report[label] = {"hand_frames": len(placed), "rms_median_px": float(np.median(rms)),
                         "rms_max_px": float(rms.max()), "iterations_median": float(np.median(iterations)),
                         "iterations_max": int(max(iterations)),
                         "placement_ms_per_hand_frame": 1000 * predictor.placement_cpu_s / len(placed),
                         "camera_acceleration_mm_per_frame2": 1000 * mean_acceleration(joints),
                         "root_depth_median_m": float(np.median(joints[:, 0, 2]))}
    report["machine"] = machine_load()
    return report


def print_camera_report(report: dict) -> None:
    first = report[CAMERA_ROWS[0][0]]
    print(f"\ncamera space, offline track ({first['hand_frames']} hand-frames, the hand "
          f"{first['root_depth_median_m']:.2f} m away: median root depth)")
    print(f"  {'':16s} {'RMS med px':>10s} {'RMS max':>8s} {'iter med':>8s} {'iter max':>8s} {'ms/frame':>8s} "
          f"{'accel mm/f2':>11s}")
    for label, _, _ in CAMERA_ROWS:
        r = report[label]
        print(f"  {label:16s} {r['rms_median_px']:10.2f} {r['rms_max_px']:8.2f} {r['iterations_median']:8.0f} "
              f"{r['iterations_max']:8d} {r['placement_ms_per_hand_frame']:8.1f} "
              f"{r['camera_acceleration_mm_per_frame2']:11.2f}")
    print(f"  {report['machine']}")


def pan_zoom_clip(photo: np.ndarray, labels: np.ndarray, frames: int, size=(640, 480)):
    """Frames of a slow pan and zoom over a photo, and the 2x3 map photo -> frame per frame."""
    import cv2

    low, high = labels.min(0), labels.max(0)
    centre, edge = (low + high) / 2, float((high - low).max())
    images, maps = [], []
    for t in range(frames):
        phase = t / max(frames - 1, 1)
        zoom = size[1] / (edge * (3.0 - 1.0 * np.sin(np.pi * phase)))     # the hand fills 1/3 to 1/2 of the height
        shift = np.array([0.15 * size[0] * np.sin(2 * np.pi * phase), 0.1 * size[1] * np.sin(np.pi * phase)])
        offset = np.array(size) / 2 + shift - zoom * centre
        matrix = np.array([[zoom, 0, offset[0]], [0, zoom, offset[1]]])
        images.append(cv2.warpAffine(photo, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
        maps.append(matrix)
    return images, maps


def real_clip(args) -> dict | None:
    """The pan-and-zoom clip over the first labelled photo in which MediaPipe tracks the hand."""
    folder = Path(args.photos)
    if not (folder / "labels.json").is_file():
        print(f"real clip skipped: no labelled photos at {folder}")
        return None
    entries = json.loads((folder / "labels.json").read_text())
    for entry in entries[args.photo_index:]:
        labels = np.asarray(entry["keypoints_2d"], np.float64)[:, :2]
        images, maps = pan_zoom_clip(read_image(folder / entry["image"]), labels, args.real_frames)
        report = {"photo": Path(entry["image"]).name, "frames": len(images)}
        for mode in MODES:
            records, seconds = run_mode(mode, Frames(images, 30.0, "real"), TrackingDetector(1), args.checkpoint)
            joints = first_hand_joints(records)
            valid = np.isfinite(joints).all((1, 2))
            if valid.mean() < 0.8:
                break
            back = [np.c_[e.result.keypoints_2d, np.ones(21)] @ np.linalg.inv(np.r_[m, [[0, 0, 1]]]).T
                    for r, m in zip(records, maps) for e in r.hands[:1] if e.result is not None]
            report[mode] = {"mean_acceleration_mm_per_frame2": 1000 * mean_acceleration(joints, valid),
                            "error_2d_photo_px": float(np.mean([np.linalg.norm(b[:, :2] - labels, axis=1).mean()
                                                                for b in back])),
                            "hands": int(valid.sum()), "frames_per_s_with_mediapipe": len(records) / seconds}
        else:
            return report
    print("real clip skipped: MediaPipe did not track a hand in at least 80% of the frames of any photo")
    return None


def print_report(name: str, report: dict) -> None:
    print(f"\n{name}")
    for mode in REPORT_ROWS:
        if mode in report:
            print(f"  {mode:20s} " + "  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                              for k, v in report[mode].items()))
    rest = {k: v for k, v in report.items() if k not in REPORT_ROWS}
    if rest:
        print("  " + "  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in rest.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--side", choices=("left", "right"), default="right")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--photos", default=str(REAL_PHOTOS_DIR), help="folder with labels.json (read only)")
    parser.add_argument("--photo-index", type=int, default=0, help="first labelled photo to try")
    parser.add_argument("--real-frames", type=int, default=90)
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--world-landmarks", action="store_true",
                        help="also the synthetic video with simulated world landmarks (the 45-D temporal fit)")
    parser.add_argument("--pinhole", action="store_true",
                        help="also the synthetic video's keypoints drawn by the default lens (the pinhole fits)")
    parser.add_argument("--camera-space", action="store_true",
                        help="also the offline track placed in the camera: translation, pose fit cold and warm")
    parser.add_argument("--skip-synthetic", action="store_true", help="skip the smoothing modes' comparison")
    parser.add_argument("--write", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_profile("quick")
    results = {}
    if not args.skip_synthetic:
        results["synthetic"] = synthetic(args, config, hand_model_from_config(config))
        print_report(f"synthetic video ({args.frames} frames, 30 fps, detector-like noise)", results["synthetic"])
    if args.pinhole:
        results["synthetic_pinhole"] = synthetic(args, config, hand_model_from_config(config), pinhole=True)
        print_report("synthetic video drawn by the default lens (keypoints only)", results["synthetic_pinhole"])
    if args.camera_space:
        results["camera_space"] = camera_space(args, config, hand_model_from_config(config))
        print_camera_report(results["camera_space"])
    if args.world_landmarks:
        results["synthetic_world"] = synthetic(args, config, hand_model_from_config(config), world_landmarks=True)
        print_report("synthetic video with simulated world landmarks", results["synthetic_world"])
    if args.world_landmarks and args.pinhole:
        results["synthetic_pinhole_world"] = synthetic(args, config, hand_model_from_config(config),
                                                       world_landmarks=True, pinhole=True)
        print_report("synthetic video drawn by the default lens, with simulated world landmarks seen along the "
                     "ray", results["synthetic_pinhole_world"])
    if not args.skip_real:
        results["real_clip"] = real_clip(args)
        if results["real_clip"]:
            print_report("real clip (pan and zoom over a still hand, MediaPipe tracking)", results["real_clip"])
    if args.write:
        write_json(args.write, results)


if __name__ == "__main__":
    main()
