"""The README's results table, written from the metrics recorded in the shipped checkpoint.

    .venv/bin/python docs/make_results.py            # rewrite the table between the README's markers
    .venv/bin/python docs/make_results.py --check    # exit 1 if the README's table disagrees

Training ends by evaluating the network on its held-out synthetic validation hands and records
the result, with the profile and step counts, in the checkpoint (``metrics``;
``net.train``); ``python -m wildhands export-checkpoint`` keeps all of it in the copy shipped in
``params/checkpoints/``. Nothing here is typed by hand: after exporting a new checkpoint, run
this script, and tests/test_docs.py fails until the README agrees with the checkpoint.
"""
from __future__ import annotations

from pathlib import Path

from make_architecture import ROOT, replace_between, update_document

from wildhands.net.checkpoints import read_checkpoint

README = ROOT / "README.md"
CHECKPOINT = ROOT / "params" / "checkpoints" / "wildhands_2d_open_hand.pt"
BEGIN, END = "<!-- results:begin (docs/make_results.py) -->", "<!-- results:end -->"
# Rows: (label, suffix of the recorded metric names). The suffix names how the keypoints were given.
ROWS = (("exact (as `--keypoints` labels)", ""),
        ("detector-like (MediaPipe's measured errors, swaps, mirrored hands)", "_detector_noise"))


def recorded(payload: dict, name: str) -> float:
    """One recorded metric of the checkpoint, or an error naming it."""
    metrics = payload.get("metrics") or {}
    if name not in metrics:
        raise KeyError(f"{CHECKPOINT.name}: no recorded metric {name!r} (recorded: {sorted(metrics)}); "
                       "export a checkpoint from a finished training run")
    return float(metrics[name])


def results_table(payload: dict, checkpoint: Path = CHECKPOINT) -> str:
    """The caption and markdown table of ``payload``'s recorded metrics."""
    config = payload["config"]
    steps = (f"{config['pretrain']['steps']} pretraining + {payload['step']} fine-tuning steps"
             if payload["stage"] == "finetune" else f"{payload['step']} {payload['stage']} steps")
    caption = (f"`{checkpoint.relative_to(ROOT)}`: the `{payload['variant']}` variant, a {payload['backbone']}, "
               f"profile `{config.get('profile')}`, {steps}; the network alone, one "
               f"pass, on its {int(recorded(payload, 'count'))} held-out synthetic validation hands, as recorded "
               f"in the checkpoint at the end of training:")
    lines = [caption, "", "| input keypoints | 3D keypoint error, root-aligned (mm) | 2D keypoint error (px at 320) |",
             "|---|---|---|"]
    for label, suffix in ROWS:
        lines.append(f"| {label} | {recorded(payload, 'mpjpe_3d_mm' + suffix):.1f} "
                     f"| {recorded(payload, 'error_2d_px' + suffix):.1f} |")
    return "\n".join(lines)


def readme_with_results(readme: str, payload: dict) -> str:
    """``readme`` with the generated table between its results markers."""
    return replace_between(readme, BEGIN, END, results_table(payload), str(README))


def main(argv=None) -> int:
    current = readme_with_results(README.read_text(), read_checkpoint(CHECKPOINT))
    return update_document(argv, __doc__.splitlines()[0], README, current, str(CHECKPOINT), "docs/make_results.py")


if __name__ == "__main__":
    raise SystemExit(main())
