"""First figures from a CUDA machine, in under 8 minutes: ``scripts/gpu_check.sh`` (docs/gpu.md).

Prints, and writes as JSON (``--report``):

1. the torch, CUDA, cuDNN and driver versions and the GPUs;
2. training images/s of each input variant at the paper's sizes (ResNet-50 at 320, batch 64,
   bf16 autocast, channels-last; pretraining on a small synthetic set, and fine-tuning for
   RGB+2D), with each one's peak GPU memory;
3. one process against two under ``torchrun`` (DDP): NCCL on two GPUs; on one GPU, two processes
   share it: NCCL is tried (recent versions refuse two ranks on one device, and the script
   reports it), then gloo, which allows it;
4. the quick profile's 2D recipe trained on the GPU (about 5 minutes) with its validation error,
   to compare with the CPU figures (README: 11.8 / 17.5 mm on the test hands after 1600 + 150 steps).

Everything it trains goes to a temporary outputs folder (``WILDHANDS_OUTPUTS``), removed by the
shell script. Without a CUDA device it says so and exits with status 2, measuring nothing.
``--device cpu --tiny`` runs every step at toy sizes on the CPU, to check the script itself.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

NO_CUDA = 2  # exit status: nothing measured

PAPER_STEPS, PAPER_LOG_EVERY = 30, 10          # images/s from the records after the first 10 steps
FINETUNE_STEPS = 20
DDP_STEPS = 20


def log(message: str) -> None:
    print(f"[gpu_check] {message}", flush=True)


def versions() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "gpus": [{"name": torch.cuda.get_device_name(i),
                      "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
                     for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else [],
            "cpus": os.cpu_count()}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        info["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        info["driver"] = None
    return info


def paper_config(device: str, tiny: bool) -> dict:
    """The paper profile at its sizes, with counts cut to a throughput measurement."""
    from wildhands.config import load_profile

    workers = min(8, os.cpu_count() or 1)
    overrides = {
        "device": device, "model.pretrained": "",            # no download: random weights time the same
        "synthetic.num_train": 256 if not tiny else 4, "synthetic.num_val": 16 if not tiny else 2,
        "synthetic.num_test": 0, "synthetic.workers": workers, "synthetic.shard_size": 64 if not tiny else 2,
        "pretrain.steps": PAPER_STEPS if not tiny else 2, "pretrain.log_every": PAPER_LOG_EVERY if not tiny else 1,
        "pretrain.checkpoint_every": 0, "pretrain.workers": workers,
        "finetune.steps": FINETUNE_STEPS if not tiny else 2, "finetune.log_every": PAPER_LOG_EVERY if not tiny else 1,
        "finetune.checkpoint_every": 0, "finetune.workers": workers,
    }
    if tiny:
        overrides.update({"model.input_size": 48, "pretrain.batch_size": 2, "finetune.batch_size": 2,
                          "optim.amp_cpu": True})
    config = load_profile("paper", overrides)
    if tiny:
        for entry in config["variants"].values():
            entry.pop("model.input_size", None)
    return config


def _steady_images_per_s(history: list) -> float:
    """Images/s over the log records after the first (cuDNN autotuning, loader start-up)."""
    later = history[1:] or history
    return sum(r["images_per_s"] for r in later) / len(later)


def _peak_gib(device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def throughput(config: dict) -> dict:
    """Images/s and peak memory of each variant's pretraining, and of RGB+2D fine-tuning."""
    from wildhands.data.synthetic import generate_synthetic_set
    from wildhands.hand.hand_model import hand_model_from_config
    from wildhands.net import train

    hand_model = hand_model_from_config(config)
    start = time.perf_counter()
    for split in ("train", "val"):
        generate_synthetic_set(config, split=split, hand_model=hand_model, progress=False)
    log(f"synthetic set for the measurement: {time.perf_counter() - start:.0f} s")
    device = train.resolve_device(config)
    out = {}
    for stage, variant in (("pretrain", "2d"), ("pretrain", "rgb"), ("pretrain", "rgb+2d"), ("finetune", "rgb+2d")):
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        result = train.train(config, stage, variant=variant, hand_model=hand_model, progress=False)
        figure = {"images_per_s": round(_steady_images_per_s(result.history), 1),
                  "peak_memory_gib": _peak_gib(device), "wall_s": round(time.perf_counter() - start, 1),
                  "batch_size": int(config[stage]["batch_size"]),
                  "input_size": int(train.variant_config(config, variant)["model"]["input_size"]),
                  "autocast": result.history[-1]["autocast"]}
        out[f"{stage} {variant}"] = figure
        log(f"{stage:<8} {variant:<6} {figure['images_per_s']:>8.1f} images/s  peak {figure['peak_memory_gib']} GiB  "
            f"({figure['autocast']}, {figure['input_size']} px, batch {figure['batch_size']})")
    return out


def ddp_comparison(config_path: Path, device: str, tiny: bool, single: float) -> dict:
    """2-process DDP pretraining of the 2D variant through torchrun, against one process."""
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    # One GPU: NCCL is tried (recent NCCL refuses two ranks on one device: "Duplicate GPU
    # detected"), then gloo, which allows it.
    backends = ["nccl"] if gpus >= 2 else ["nccl", "gloo"] if gpus == 1 else ["gloo"]
    out = {"gpus": gpus, "one_process_images_per_s": single}
    for backend in backends:
        run_dir = Path(os.environ["WILDHANDS_OUTPUTS"]) / f"ddp-{backend}"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                   "-m", "wildhands", "train", "--config", str(config_path), "--stage", "pretrain", "--variant", "2d",
                   "--run-dir", str(run_dir), "--no-progress", "--set", f"distributed.backend={backend}",
                   "--set", f"pretrain.steps={DDP_STEPS if not tiny else 2}"]
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=150,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
        except subprocess.TimeoutExpired:
            out[backend] = {"error": "no result within 150 s"}
            log(f"DDP {backend}: no result within 150 s; left out")
            continue
        if done.returncode != 0:
            out[backend] = {"error": (done.stdout + done.stderr)[-800:]}
            log(f"DDP {backend}: failed (exit {done.returncode}); last lines:\n{(done.stdout + done.stderr)[-800:]}")
            continue
        from wildhands.net.train import read_log

        records = read_log(Path(os.environ["WILDHANDS_OUTPUTS"]) / "logs" / f"{run_dir.name}.jsonl")
        rate = round(_steady_images_per_s(records), 1)
        out[backend] = {"images_per_s": rate, "world_size": records[-1]["world_size"],
                        "wall_s": round(time.perf_counter() - start, 1),
                        "placement": "2 GPUs" if gpus >= 2 else ("both processes on one GPU" if gpus else "CPU")}
        log(f"DDP {backend}: 2 processes ({out[backend]['placement']}) {rate:.1f} images/s against "
            f"{single:.1f} for one process")
    return out


def quick_training(device: str, tiny: bool) -> dict:
    """The quick profile's 2D recipe (pretraining on sampled hands, then fine-tuning) on this device."""
    from wildhands.config import load_profile
    from wildhands.data.synthetic import generate_synthetic_set
    from wildhands.net import train

    workers = min(8, os.cpu_count() or 1)
    overrides = {"device": device, "synthetic.workers": workers, "pretrain.workers": workers,
                 "finetune.workers": workers, "synthetic.num_test": 0}
    if tiny:
        overrides.update({"synthetic.num_train": 4, "synthetic.num_val": 2, "synthetic.shard_size": 2,
                          "pretrain.steps": 2, "finetune.steps": 2, "pretrain.batch_size": 2,
                          "finetune.batch_size": 2})
    config = load_profile("quick", overrides)
    start = time.perf_counter()
    for split in ("train", "val"):
        generate_synthetic_set(config, split=split, progress=False)
    data_s = time.perf_counter() - start
    pretrained = train.pretrain(config, variant="2d", progress=False)
    finetuned = train.finetune(config, variant="2d", init_checkpoint=pretrained.checkpoint, progress=False)
    figure = {"steps": [int(config["pretrain"]["steps"]), int(config["finetune"]["steps"])],
              "wall_s": round(time.perf_counter() - start, 1), "synthetic_set_s": round(data_s, 1),
              "validation": finetuned.metrics, "validation_pretrained": pretrained.metrics}
    metrics = finetuned.metrics
    log(f"quick 2D recipe ({figure['steps'][0]} + {figure['steps'][1]} steps) in {figure['wall_s']:.0f} s: "
        f"validation {metrics.get('mpjpe_3d_mm', float('nan')):.1f} mm clean, "
        f"{metrics.get('mpjpe_3d_mm_detector_noise', float('nan')):.1f} mm with detector-like keypoints")
    return figure


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--tiny", action="store_true", help="toy sizes (to check this script on a CPU)")
    parser.add_argument("--report", default=None, help="where to write the JSON report")
    parser.add_argument("--skip-quick", action="store_true", help="leave out the quick-profile training")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        reason = "torch was built without CUDA" if torch.version.cuda is None else \
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
        log(f"no CUDA device: {reason}. Nothing measured. Run this on a machine with an NVIDIA GPU and its driver "
            "(nvidia-smi lists it); on a CPU, ./run_all.sh --profile paper-dryrun checks the paper's code path.")
        return NO_CUDA
    if "WILDHANDS_OUTPUTS" not in os.environ:
        log("WILDHANDS_OUTPUTS is not set: run scripts/gpu_check.sh, which points it at a temporary folder")
        return 1
    started = time.perf_counter()
    report = {"versions": versions()}
    info = report["versions"]
    log(f"python {info['python']}, torch {info['torch']}, CUDA {info['cuda']}, cuDNN {info['cudnn']}, "
        f"driver {info['driver']}, {info['cpus']} CPUs")
    for i, gpu in enumerate(info["gpus"]):
        log(f"GPU {i}: {gpu['name']}, {gpu['memory_gib']} GiB")

    from wildhands.fileio import atomic_path

    config = paper_config(args.device, args.tiny)
    config_path = Path(os.environ["WILDHANDS_OUTPUTS"]) / "gpu-check-paper.toml"
    with atomic_path(config_path) as tmp:   # the same settings for the torchrun processes
        tmp.write_text(_as_toml_overrides(config))
    report["paper_sizes"] = throughput(config)
    report["ddp"] = ddp_comparison(config_path, args.device, args.tiny, report["paper_sizes"]["pretrain 2d"]["images_per_s"])
    if not args.skip_quick:
        report["quick_2d"] = quick_training(args.device, args.tiny)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    log(f"done in {report['wall_s']:.0f} s")
    if args.report:
        with atomic_path(args.report) as tmp:
            tmp.write_text(json.dumps(report, indent=1, default=str))
        log(f"report: {args.report}")
    return 0


def _as_toml_overrides(config: dict) -> str:
    """A profile file that inherits paper and sets what ``paper_config`` changed (tables of scalars)."""
    from wildhands.config import load_profile

    base = load_profile("paper")
    lines = ['inherit = "paper"', 'profile = "paper"']  # the same run names and synthetic set
    top = {k: v for k, v in config.items() if not isinstance(v, dict) and k != "profile" and base.get(k) != v}
    lines += [f"{k} = {json.dumps(v)}" for k, v in top.items()]
    for table, values in config.items():
        if not isinstance(values, dict) or table == "variants":
            continue
        changed = {k: v for k, v in values.items() if base.get(table, {}).get(k) != v and not isinstance(v, dict)}
        if changed:
            lines.append(f"\n[{table}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in changed.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
