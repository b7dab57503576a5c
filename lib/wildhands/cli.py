"""Command line: ``python -m wildhands <command> ...``.

Commands are thin: each hands its arguments to the library module that owns the work.
"""
from __future__ import annotations

import argparse
import sys


def _build_hand_model(argv: list[str]) -> int:
    from wildhands.hand.open_hand import save_open_hand_model

    parser = argparse.ArgumentParser(prog="wildhands build-hand-model",
                                     description="Build the open hand model (MANO format) deterministically.")
    parser.add_argument("--out", default=None, help="output pickle (default: params/hand_models/OPEN_HAND_RIGHT.pkl; "
                        "with --real-poses outputs/hand_models/OPEN_HAND_RIGHT_real_poses.pkl)")
    parser.add_argument("--real-poses", nargs="?", const="", default=None, metavar="NPZ",
                        help="learn the pose space from the 45-D fits of DexYCB's training subjects 01-08 (the file; "
                             "default WILDHANDS_REAL_POSES or ../shared/real_poses/dexycb_left_hands.npz)")
    parser.add_argument("--synthetic-share", type=float, default=0.0,
                        help="with --real-poses: share of the synthetic corpus mixed in (0 to < 1)")
    args = parser.parse_args(argv)
    real_poses, out = None, args.out
    if args.real_poses is not None:
        from wildhands.data.real_pose_space import REAL_POSE_MODEL_NAME, real_pose_corpus
        from wildhands.hand.hand_model import HandModel
        from wildhands.paths import OPEN_HAND_PATH, output_dir

        real_poses = real_pose_corpus(HandModel(OPEN_HAND_PATH), "train", path=args.real_poses or None)
        out = out or output_dir("hand_models") / REAL_POSE_MODEL_NAME
    path = save_open_hand_model(out, real_poses=real_poses, synthetic_share=args.synthetic_share)
    print(f"wrote {path}")
    return 0


def _train(argv: list[str]) -> int:
    from wildhands.net.train import main as train_main

    return int(train_main(argv) or 0)


def _predict(argv: list[str]) -> int:
    from wildhands.app.video import main as video_main
    from wildhands.app.video import wants_video

    if wants_video(argv):  # MP4/AVI/MOV inputs or --sequence: the video pipeline
        return int(video_main(argv) or 0)
    from wildhands.app.predict import main as predict_main

    return int(predict_main(argv) or 0)


def _export_checkpoint(argv: list[str]) -> int:
    from wildhands.app.predict import DEFAULT_CHECKPOINT
    from wildhands.net.checkpoints import export_checkpoint

    parser = argparse.ArgumentParser(prog="wildhands export-checkpoint",
                                     description="Write a trained checkpoint as predict's shipped default "
                                                 "(float16 weights, no optimiser state).")
    parser.add_argument("checkpoint", help="e.g. outputs/checkpoints/quick-2d-finetune/final.pt")
    parser.add_argument("--out", default=str(DEFAULT_CHECKPOINT))
    args = parser.parse_args(argv)
    path = export_checkpoint(args.checkpoint, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); the README's results table follows its recorded "
          "metrics: run docs/make_results.py")
    return 0


def _prepare_data(argv: list[str]) -> int:
    from wildhands.data.datasets.prepare import main as prepare_main

    return prepare_main(argv)


def _dryrun(argv: list[str]) -> int:
    from wildhands.app.dryrun import main as dryrun_main

    return dryrun_main(argv)


def _run_notebooks(argv: list[str]) -> int:
    from wildhands.app.notebook_runner import main as run_main

    return run_main(argv)


COMMANDS = {
    "build-hand-model": (_build_hand_model, "build the open hand model into params/"),
    "train": (_train, "pretrain or fine-tune a network (torchrun-compatible)"),
    "predict": (_predict, "photographs (or videos) to 3D hands: JSON, overlays, OBJ meshes"),
    "export-checkpoint": (_export_checkpoint, "ship a trained checkpoint as predict's default (float16)"),
    "prepare-data": (_prepare_data, "verify the configured real data sets, count them, build the GrabCut masks"),
    "dryrun": (_dryrun, "the paper profile's code path on the CPU, counts shrunk (docs/gpu.md)"),
    "run-notebooks": (_run_notebooks, "execute the notebooks with papermill (what run_all.sh calls)"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:<18} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: python -m wildhands <command> [args]\n\ncommands:\n" + "\n".join(lines))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    return COMMANDS[command][0](rest)
