"""The paper profile's code path, proven on the CPU: ``python -m wildhands dryrun``.

``./run_all.sh --profile paper`` is meant for GPUs and the real data sets; this runs the same code
with only counts and sizes shrunk (profile ``paper-dryrun``): ResNet-50 at 320 from "ImageNet"
weights, bf16 autocast and channels-last, the real-format fixtures of every set the paper uses
(``datasets.fixtures``) read by the real loaders, ``prepare-data`` and its GrabCut mask cache,
2 pretraining and 2 fine-tuning steps of batch 2 on the real-data mixture with DataLoader worker
processes, a checkpoint, a fine-tuning run killed after its first step and resumed, notebook 04's
real-set evaluation (tables 1-4) and 2-process gloo DDP through ``torchrun``. ``--notebooks``
runs the notebooks themselves in that profile instead of their library calls (what
``./run_all.sh --profile paper-dryrun`` does). docs/gpu.md says what differs from the GPU run.

Every step checks what it must have done (autocast really bf16, inputs really channels-last,
the resumed run really resumed, DDP really two processes) and the run stops at the first that
did not, naming it. Everything goes under one folder (default ``outputs/paper-dryrun``):
the fixtures, the profile pointing at them, a private torch cache holding a stand-in for the
ImageNet weights file (randomly initialised, under the real file's name: nothing is downloaded),
and ``report.json`` with each step's wall time. Checkpoints and logs go where training puts
them (``outputs/checkpoints/paper-dryrun-*``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from wildhands.app.notebook_runner import run_notebooks
from wildhands.config import load_profile
from wildhands.data.datasets import PAPER_TEST, PAPER_TRAIN, JointHandDataset
from wildhands.data.datasets.fixtures import write_paper_fixtures
from wildhands.data.datasets.prepare import prepare_data
from wildhands.data.synthetic import generate_synthetic_set
from wildhands.eval import paper_reference as paper
from wildhands.eval import protocol
from wildhands.fileio import atomic_path
from wildhands.hand.camera import CROP_SIZE
from wildhands.hand.hand_model import hand_model_from_config
from wildhands.net.checkpoints import read_checkpoint
from wildhands.net.encoder import imagenet_weights_file
from wildhands.net.train import (StageSettings, default_datasets, default_run_dir, finetune, pretrain, read_log,
                                 variant_config)
from wildhands.paths import OUTPUTS_DIR

PROFILE = "paper-dryrun"
PAPER_SIZE = CROP_SIZE              # the paper's network input, pixels: its crop
DEFAULT_VARIANT = "rgb+2d"          # both input kinds: image channels and heat-maps


class DryRunFailed(RuntimeError):
    """A step of the dry run did not do what the GPU run will need; the message names it."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise DryRunFailed(message)


# ----------------------------------------------------------------------------- set-up

def write_profile(work_dir: Path, data_paths: dict, input_size: int | None = None) -> Path:
    """``work_dir/paper-dryrun.toml``: the paper-dryrun profile with ``[data]`` at the fixtures.

    ``input_size`` shrinks the network input of every variant (heat-map sigmas scaled with it,
    since they are pixels of the input); None keeps the paper's 320.
    """
    lines = [f'inherit = "{PROFILE}"', f'profile = "{PROFILE}"', "", "[data]"]
    lines += [f"{name} = {json.dumps(str(path))}" for name, path in data_paths.items()]
    if input_size is not None:
        base = load_profile(PROFILE)
        factor = int(input_size) / PAPER_SIZE
        sigma = float(base["preprocess"]["heatmap_sigma"]) * factor
        lines += ["", "[model]", f"input_size = {int(input_size)}", "", "[preprocess]", f"heatmap_sigma = {sigma}",
                  "", "[variants]"]
        for variant, entry in base["variants"].items():
            changed = {key: int(input_size) if key == "model.input_size" else float(value) * factor
                       for key, value in entry.items() if key in ("model.input_size", "preprocess.heatmap_sigma")}
            inline = ", ".join(f'"{key}" = {value}' for key, value in changed.items())
            lines.append(f'"{variant}" = {{ {inline} }}')
    path = Path(work_dir) / f"{PROFILE}.toml"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def stand_in_imagenet_weights(torch_home: Path, backbone: str = "resnet50") -> Path:
    """Point torch's cache at ``torch_home`` and put a randomly initialised state dict there under the
    name of torchvision's ImageNet file, so that ``pretrained = "imagenet"`` runs its code path
    offline. Only the dry run's own cache is touched; the values mean nothing."""
    import torchvision

    os.environ["TORCH_HOME"] = str(torch_home)          # notebooks and torchrun processes inherit it
    torch.hub.set_dir(str(Path(torch_home) / "hub"))
    path = imagenet_weights_file(backbone)
    if not path.is_file():
        with atomic_path(path) as tmp:
            torch.save(getattr(torchvision.models, backbone)(weights=None).state_dict(), tmp)
    return path


@contextlib.contextmanager
def conv_probe():
    """Count the (output dtype, input channels-last) pairs of every convolution run in training mode."""
    seen = Counter()

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d) and module.training:
            seen[(str(output.dtype), inputs[0].is_contiguous(memory_format=torch.channels_last))] += 1

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def _check_training_path(seen: Counter, history: list, stage: str, steps: int) -> None:
    _check(bool(seen), f"{stage}: no convolution ran in training mode")
    _check(set(seen) == {("torch.bfloat16", True)},
           f"{stage}: convolutions ran as {dict(seen)}; expected bf16 outputs from channels-last inputs only")
    _check([r["step"] for r in history] == list(range(1, steps + 1)), f"{stage}: logged steps "
           f"{[r['step'] for r in history]}, expected 1..{steps}")
    _check(all(r["autocast"] == "bfloat16" for r in history), f"{stage}: the log says autocast "
           f"{[r['autocast'] for r in history]}")


class _Killed(Exception):
    pass


# ----------------------------------------------------------------------------- the run

@contextlib.contextmanager
def _timed(report: dict, name: str, log):
    """Log a step of the dry run and record its wall time in ``report["steps_s"]``."""
    log(f"[dryrun] {name} ...")
    start = time.perf_counter()
    yield
    report["steps_s"][name] = round(time.perf_counter() - start, 2)
    log(f"[dryrun] {name}: done in {report['steps_s'][name]:.1f} s")


def run_dryrun(work_dir=None, input_size: int | None = None, variant: str = DEFAULT_VARIANT, ddp: bool = True,
               notebooks: bool = False, log=print) -> dict:
    """Run the dry run (see the module docstring); returns the report also written to ``report.json``."""
    work_dir = Path(work_dir or OUTPUTS_DIR / PROFILE)
    work_dir.mkdir(parents=True, exist_ok=True)
    report = {"profile": PROFILE, "variant": variant, "input_size": input_size or PAPER_SIZE,
              "torch": torch.__version__, "threads": torch.get_num_threads(), "steps_s": {}, "checks": []}
    with _timed(report, "fixtures", log):
        config, profile_path = _fixtures(work_dir, input_size, variant, report)
    with _timed(report, "prepare-data", log):
        prepared = prepare_data(config, log=log)
        _check(prepared.masks_wanted > 0, "prepare-data: no GrabCut mask wanted for the 2D-only training hands")
        report["data"] = prepared.counts
    if notebooks:
        with _timed(report, "notebooks", log):
            run_notebooks(str(profile_path), log=log)
        resume_dir = work_dir / "resume-check"
    else:
        _pretrain(config, variant, report, log)
        resume_dir = default_run_dir(variant_config(config, variant), "finetune")
    _check_mixture(config, report)
    resumed = _killed_and_resumed_finetune(config, variant, resume_dir, report, log)
    ddp_dir = work_dir / "ddp-finetune"
    # torchrun starts now and runs beside the evaluation: its processes spend their first seconds importing.
    launched = time.perf_counter()
    torchrun = _start_torchrun(profile_path, variant, resumed.checkpoint, ddp_dir) if ddp else None
    try:
        if not notebooks:
            _evaluate_real_sets(config, variant, resumed.checkpoint, report, log)
    finally:
        output = torchrun.communicate()[0] if torchrun is not None else ""
    if torchrun is not None:
        report["steps_s"]["torchrun, 2 processes, gloo (beside the evaluation)"] = round(
            time.perf_counter() - launched, 2)
        _check_torchrun(torchrun.returncode, output, ddp_dir, report)
    write_report = json.dumps(report, indent=1, default=str)
    with atomic_path(work_dir / "report.json") as tmp:
        tmp.write_text(write_report)
    log(f"[dryrun] passed: {'; '.join(report['checks'])}; report {work_dir / 'report.json'}")
    return report


def _fixtures(work_dir: Path, input_size: int | None, variant: str, report: dict) -> tuple[dict, Path]:
    """The real-format fixtures, the profile pointing at them and the stand-in ImageNet weights;
    (the profile, its path). Checks the variant is the paper's network from ImageNet weights."""
    data_paths = write_paper_fixtures(work_dir / "data")
    profile_path = write_profile(work_dir, data_paths, input_size)
    config = load_profile(str(profile_path))
    stand_in_imagenet_weights(work_dir / "torch")
    needed = {name for name, _ in PAPER_TRAIN + PAPER_TEST}
    _check(needed <= set(data_paths), f"fixtures: sets {sorted(needed - set(data_paths))} missing")
    model = variant_config(config, variant)["model"]
    _check((model["backbone"], model["pretrained"]) == ("resnet50", "imagenet"),
           f"profile: {model['backbone']} from {model['pretrained']!r}, not the paper's")
    report["network_input"] = int(model["input_size"])
    return config, profile_path


def _pretrain(config: dict, variant: str, report: dict, log) -> None:
    """The synthetic set and the pretraining run, its convolutions checked bf16 and channels-last."""
    with _timed(report, "synthetic set", log):
        for split in ("train", "val", "test"):
            generate_synthetic_set(config, split=split, progress=False)
    with _timed(report, "pretrain", log), conv_probe() as seen:
        pretrained = pretrain(config, variant=variant, progress=False)
    _check_training_path(seen, pretrained.history, "pretrain", StageSettings.from_config(config, "pretrain").steps)
    report["checks"].append(f"pretrain: {sum(seen.values())} convolutions bf16 from channels-last inputs")


def _check_mixture(config: dict, report: dict) -> None:
    """Fine-tuning's training set is the paper's real-data mixture (read by the real loaders)."""
    mixture = default_datasets(config, "finetune")[0]
    _check(isinstance(mixture, JointHandDataset) and set(mixture.counts()) == {n for n, _ in PAPER_TRAIN},
           "fine-tuning does not train on the paper's real-data mixture")
    report["mixture"] = mixture.counts()


def _killed_and_resumed_finetune(config: dict, variant: str, resume_dir: Path, report: dict, log):
    """Fine-tuning killed at its last step (after the checkpoint of the step before), then resumed
    to the end: the resumed run's ``TrainResult``, its log continuing the killed one's."""
    steps = StageSettings.from_config(config, "finetune").steps

    def kill(done: int, record: dict) -> None:
        if done == steps:
            raise _Killed

    with _timed(report, "finetune, killed", log), conv_probe() as seen:
        with contextlib.suppress(_Killed):
            finetune(config, variant=variant, run_dir=resume_dir, callback=kill, progress=False)
            raise DryRunFailed("finetune: the run was to be killed at its last step and was not")
    killed_at = read_checkpoint(resume_dir / "last.pt")["step"]
    _check(killed_at == steps - 1, f"finetune: last.pt holds step {killed_at}, expected {steps - 1}")
    with _timed(report, "finetune, resumed", log), conv_probe() as resumed_seen:
        resumed = finetune(config, variant=variant, run_dir=resume_dir, resume=True, progress=False)
    seen.update(resumed_seen)
    _check(read_checkpoint(resumed.checkpoint)["step"] == steps, "finetune: final.pt is not at the last step")
    _check_training_path(seen, read_log(resumed.log_path), "finetune", steps)
    _check([r["step"] for r in resumed.history] == list(range(1, steps + 1)),
           "finetune: the resumed run did not continue the killed one's log")
    report["checks"].append(f"finetune: killed after step {killed_at}, resumed to step {steps}")
    return resumed


DDP_STEPS = 1                       # fine-tuning steps of the torchrun check


def _start_torchrun(profile_path: Path, variant: str, checkpoint: Path, ddp_dir: Path) -> subprocess.Popen:
    """2-process gloo fine-tuning from ``checkpoint`` through ``torchrun``, started in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "wildhands", "train", "--config", str(profile_path), "--stage", "finetune", "--variant", variant,
         "--init", str(checkpoint), "--run-dir", str(ddp_dir), "--no-progress",
         "--set", f"finetune.steps={DDP_STEPS}"],
        env={**os.environ, "OMP_NUM_THREADS": "1", "WILDHANDS_OUTPUTS": str(OUTPUTS_DIR)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _check_torchrun(returncode: int, output: str, ddp_dir: Path, report: dict) -> None:
    """The torchrun run ended well, logged world size 2 at every step and wrote its final checkpoint."""
    _check(returncode == 0, f"torchrun DDP fine-tuning failed (exit {returncode}): {output[-3000:]}")
    records = read_log(OUTPUTS_DIR / "logs" / f"{ddp_dir.name}.jsonl")
    _check([r["world_size"] for r in records] == [2] * DDP_STEPS,
           f"torchrun: logged world sizes {[r['world_size'] for r in records]}, expected 2 per step")
    _check(read_checkpoint(ddp_dir / "final.pt")["step"] == DDP_STEPS, "torchrun: no final checkpoint")
    report["checks"].append(f"torchrun: {DDP_STEPS} step on 2 gloo processes")


def _evaluate_real_sets(config: dict, variant: str, checkpoint: Path, report: dict, log) -> None:
    """Notebook 04's real-set evaluation (tables 1-4) of the fine-tuned network on the paper's four test sets."""
    with _timed(report, "real-set evaluation (notebook 04)", log):
        hand_model = hand_model_from_config(config)
        real = protocol.evaluate_real_sets(config, {variant: checkpoint}, hand_model)
        tables = {name: paper.format_rows(paper.comparison_rows(name, methods), title=name)
                  for name, methods in real.items()}
    _check(set(real) == {paper.set_key(name) for name, _ in PAPER_TEST},
           f"real-set evaluation scored {sorted(real)}, not the paper's four test sets")
    report["real_sets"] = {name: list(methods) for name, methods in real.items()}
    report["tables"] = tables


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="wildhands dryrun", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help=f"work folder (default: outputs/{PROFILE})")
    parser.add_argument("--input-size", type=int, default=None,
                        help="shrink the network input (default: the paper's 320; the test suite uses 64)")
    parser.add_argument("--variant", default=DEFAULT_VARIANT, choices=("rgb", "2d", "rgb+2d"))
    parser.add_argument("--notebooks", action="store_true", help="run the notebooks in the profile (run_all.sh)")
    parser.add_argument("--no-ddp", action="store_true", help="skip the 2-process torchrun step")
    args = parser.parse_args(argv)
    try:
        run_dryrun(args.out, args.input_size, args.variant, ddp=not args.no_ddp, notebooks=args.notebooks)
    except DryRunFailed as err:
        print(f"[dryrun] FAILED: {err}", file=sys.stderr)
        return 1
    return 0
