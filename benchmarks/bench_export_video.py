"""Video export cost: one animated .glb of a video's tracks, per hand-frame (issue 21).

    python benchmarks/bench_export_video.py [--frames 150] [--repeats 5] [--threads 2] [--camera-fit pose]
                                            [--write JSON]

A synthetic video (``data.synthetic_video``: one hand moving, 320x240, 30 fps) goes through the
offline video pipeline with its true keypoints in place of MediaPipe, its hands placed in the default
camera by ``--camera-fit`` (pose: the perspective pose fit frame by frame, as ``--export glb`` does;
translation: the translation alone); its track file is written (``app.video.write_track``) and
exported by ``app.export_gltf.export_video``: read the track, rig, animate (the pose fit's rotations
and translations; a translation-only track's frames are placed here, ``camera_space.place_hand``),
write the .glb. Reported: milliseconds per hand-frame (median over the repeats), the part of it spent
placing translation-only frames, the file's size per hand-frame, and the pipeline's CPU milliseconds per
hand-frame of the placement itself.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from wildhands.app.export_gltf import export_video, read_track, track_translations
from wildhands.app.video import KnownKeypoints, VideoPredictor, write_track
from wildhands.config import load_profile
from wildhands.data.synthetic_video import render_video
from wildhands.fileio import write_json
from wildhands.hand.camera_space import default_intrinsics
from wildhands.hand.hand_model import hand_model_from_config


def export_cost(files: list, hand_model, fps: float, frames: int, intrinsics, repeats: int) -> dict:
    """Median milliseconds of the whole export and of placing the frames alone, per hand-frame."""
    hand_frames = sum(len(read_track(file)["frames"]) for file in files)
    whole, placing = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        glb = export_video(files[0].with_name("video.glb"), files, hand_model, fps, frames, intrinsics)
        whole.append(time.perf_counter() - start)
        start = time.perf_counter()
        for file in files:
            track = read_track(file)
            if "camera_global_orient" not in track:       # placed by the translation alone: placed here
                track_translations(track, intrinsics)
        placing.append(time.perf_counter() - start)
    return {"hand_frames": hand_frames, "tracks": len(files),
            "export_ms_per_hand_frame": 1000 * float(np.median(whole)) / hand_frames,
            "placing_ms_per_hand_frame": 1000 * float(np.median(placing)) / hand_frames,
            "glb_bytes_per_hand_frame": glb.stat().st_size / hand_frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--camera-fit", choices=("pose", "translation"), default="pose",
                        help="the video pipeline's placement (pose: --export glb's default)")
    parser.add_argument("--write", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_profile("quick")
    clip = render_video(hand_model_from_config(config), config, frames=args.frames, seed=args.seed, width=320,
                        height=240)
    source = SimpleNamespace(fps=clip.fps, stem="synthetic", count=len(clip.frames),
                             frames=lambda: ((t, image, None) for t, image in enumerate(clip.frames)))
    video = VideoPredictor(args.checkpoint, "offline", detector=KnownKeypoints(clip.keypoints_2d, clip.side),
                           camera_fit=args.camera_fit)
    records, tracks = video.run(source, progress=False)
    hand_frames = sum(e.result is not None for r in records for e in r.hands)
    with tempfile.TemporaryDirectory() as folder:
        files = [Path(folder) / f"synthetic_track{track.track_id}.npz" for track in tracks]
        for file, track in zip(files, tracks):
            write_track(file, track, records)
        report = export_cost([f for f in files if f.is_file()], video.hand_model, clip.fps, len(records),
                             default_intrinsics(320, 240), args.repeats)
    report.update(camera_fit=args.camera_fit,
                  placement_cpu_ms_per_hand_frame=1000 * video.placement_cpu_s / hand_frames)
    print(f"video export: {report['export_ms_per_hand_frame']:.2f} ms per hand-frame ({report['hand_frames']} "
          f"hand-frames in {report['tracks']} track, median of {args.repeats}; placing the frames in the camera "
          f"{report['placing_ms_per_hand_frame']:.2f} ms of it), .glb {report['glb_bytes_per_hand_frame'] / 1000:.1f} "
          f"kB per hand-frame; the pipeline placed the hands ({args.camera_fit}) in "
          f"{report['placement_cpu_ms_per_hand_frame']:.1f} ms of CPU per hand-frame")
    if args.write:
        write_json(args.write, report)


if __name__ == "__main__":
    main()
