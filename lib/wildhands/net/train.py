"""Training: synthetic pretraining on parameters, then end-to-end fine-tuning on 2D+3D labels and masks.

One entry point for notebooks, the command line and ``torchrun``:

    result = pretrain(config, variant="2d")                       # notebook
    result = finetune(config, init_checkpoint=result.checkpoint)
    python -m wildhands train --config quick --stage pretrain --variant 2d [--resume] [--set k=v]
    torchrun --nproc_per_node 2 -m wildhands train ...            # DistributedDataParallel

Budgets are counts (steps of a global batch), never wall-clock. Every sample draw is seeded
by (run seed, stage, draw number) and the data order by (run seed, stage, epoch), so the
number of DataLoader workers and a kill-and-resume change nothing: on the CPU a resumed run
ends with exactly the weights of an uninterrupted one. Under DDP each process takes its slice
of every global batch (batch-norm statistics are per process).

Writes ``outputs/checkpoints/<profile>-<variant>-<stage>/{last,final}.pt`` (``last`` every
``checkpoint_every`` steps, for ``--resume``; a ``last.pt`` of another run, with another stage,
hand model or settings, is ignored and the run starts over) and a JSON-lines loss log
``outputs/logs/<profile>-<variant>-<stage>.jsonl`` with every weighted term.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, default_collate
from wildhands.config import (INFERENCE_TABLES, apply_overrides, load_profile,
                              parse_set_arguments)
from wildhands.data.datasets import paper_training_mixture
from wildhands.data.synthetic import (SampledHands, SyntheticHandDataset,
                                      synthetic_root)
from wildhands.fileio import atomic_path
from wildhands.hand.hand_model import HandModel, hand_model_from_config
from wildhands.net.checkpoints import (load_encoder_weights,
                                       load_encoder_weights_from_variant,
                                       read_checkpoint, restore_rng_states,
                                       save_checkpoint)
from wildhands.net.encoder import check_variant
from wildhands.net.losses import (keypoint_errors, parameter_losses,
                                  reconstruction_losses)
from wildhands.net.model import HandReconstructor, build_model, quarter_turns
from wildhands.net.samples import STAGES, TrainingSamples, batch_input
from wildhands.paths import OUTPUTS_DIR

TRAIN_STAGES = ("pretrain", "finetune")


@dataclass
class TrainResult:
    """What a training stage produced."""
    run_dir: Path
    checkpoint: Path          # final.pt
    log_path: Path
    history: list = field(default_factory=list)   # the log's records (dicts)
    metrics: dict = field(default_factory=dict)   # validation numbers at the end
    model: HandReconstructor | None = None         # the trained network (train mode off)


# ----------------------------------------------------------------------------- configuration

def variant_config(config: dict, variant: str | None = None) -> dict:
    """The profile for one input variant: its ``[variants.<name>]`` entry applied, ``model.variant`` set.

    The entry holds dotted overrides and ``budget``, the fraction of the ``[pretrain]`` and
    ``[finetune]`` steps this variant trains for (at least one step).
    """
    variant = check_variant(variant or config["model"]["variant"])
    overrides = dict(config.get("variants", {}).get(variant, {}))
    budget = float(overrides.pop("budget", 1.0))
    if not budget > 0:
        raise ValueError(f"variants.{variant}.budget: expected a fraction > 0 of the steps, got {budget}")
    overrides["model.variant"] = variant
    config = apply_overrides(config, overrides)
    for stage in TRAIN_STAGES:
        config[stage]["steps"] = max(1, round(int(config[stage]["steps"]) * budget))
    config["variants"] = {variant: {"budget": 1.0}}  # applied: a second call changes nothing
    return config


def run_name(config: dict, stage: str) -> str:
    return f"{config.get('profile', 'custom')}-{config['model']['variant']}-{stage}"


def default_run_dir(config: dict, stage: str) -> Path:
    return OUTPUTS_DIR / "checkpoints" / run_name(config, stage)


def pretrained_variant_path(config: dict) -> Path:
    """The final pretraining checkpoint of the variant ``[pretrain] init_variant`` names, in this profile."""
    other = check_variant(config["pretrain"]["init_variant"])
    if other == config["model"]["variant"]:
        raise ValueError(f"pretrain.init_variant: {other!r} is the variant being trained")
    path = default_run_dir({**config, "model": {**config["model"], "variant": other}}, "pretrain") / "final.pt"
    if not path.is_file():
        raise FileNotFoundError(f"pretrain.init_variant: no pretrained {other!r} network at {path}; pretrain "
                                f"that variant first (python -m wildhands train --variant {other})")
    return path


def resolve_device(config: dict) -> torch.device:
    wanted = str(config.get("device", "auto"))
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: {wanted!r} asked for but no CUDA GPU is available (use 'auto' or 'cpu')")
    return torch.device(wanted)


# ----------------------------------------------------------------------------- data

class WithheldLabels(Dataset):
    """A data set whose samples in a fixed random ``fraction`` lose their 3D labels and parameters.

    Stands for a 2D-only set (as PANOPTIC and MPII+NZSL are to the paper) in the CPU profiles.
    """

    def __init__(self, base, fraction: float, seed: int):
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"finetune.withheld_3d_fraction: expected a fraction in [0, 1], got {fraction}")
        self.base = base
        rng = np.random.default_rng([int(seed), 7919])
        self.withheld = rng.random(len(base)) < fraction

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index):
        sample = self.base[index]
        if self.withheld[index]:
            sample = dict(sample, has_3d=np.float32(0), has_params=np.float32(0))
        return sample


class DrawBatches(torch.utils.data.Sampler):
    """Per-step lists of ``(index, draw)`` for one process, from step ``start`` to ``stop``.

    The global stream visits the data set in a fresh permutation per epoch (seeded by run seed,
    stage, epoch); draw p of the stream is position p of it. Process ``rank`` of ``world`` takes
    its slice of each global batch.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, stage: str, start: int, stop: int,
                 rank: int = 0, world: int = 1):
        if num_samples < 1:
            raise ValueError("training data set is empty")
        if batch_size % world:
            raise ValueError(f"batch_size {batch_size} is not divisible by the {world} processes")
        self.n, self.batch, self.seed, self.stage = num_samples, batch_size, seed, stage
        self.start, self.stop, self.rank, self.world = start, stop, rank, world
        self._perm_epoch, self._perm = None, None

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def _position(self, draw: int) -> int:
        epoch, offset = divmod(draw, self.n)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, STAGES.index(self.stage), 104729, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        return int(self._perm[offset])

    def __iter__(self):
        local = self.batch // self.world
        for step in range(self.start, self.stop):
            first = step * self.batch + self.rank * local
            yield [(self._position(d), d) for d in range(first, first + local)]


def default_datasets(config: dict, stage: str, hand_model: HandModel | None = None):
    """(train, val) data sets of a stage (see ``wildhands.data.synthetic`` and ``wildhands.data.datasets``).

    Fine-tuning trains on the paper's real training mixture (``datasets.paper_training_mixture``:
    STB, PANOPTIC, MPII+NZSL train, with GrabCut masks where 3D labels are missing) as soon as
    the profile's ``[data]`` table gives a folder for one of them. Otherwise the stage's ``data``
    setting picks the training set: "rendered" (default) the generated synthetic set, part of it
    with its 3D labels withheld at fine-tuning (``withheld_3d_fraction``) to stand for 2D-only
    sets; "sampled" label-only hands drawn on the fly (``SampledHands``: one fresh hand per
    draw, for the 2D variant, which never sees pixels). Validation is the rendered val split.
    """
    section = config[stage]
    source = section.get("data", "rendered")
    if source not in ("rendered", "sampled"):
        raise ValueError(f"{stage}.data: expected 'rendered' or 'sampled', got {source!r}")
    if source == "sampled" and "rgb" in config["model"]["variant"]:
        raise ValueError(f"{stage}.data = 'sampled' has no images; variant {config['model']['variant']!r} needs them")
    real = paper_training_mixture(config) if stage == "finetune" else None
    root = synthetic_root(config)
    try:
        val_set = SyntheticHandDataset(root, "val")
        if real is not None:
            return real, val_set
        train_set = SyntheticHandDataset(root, "train") if source == "rendered" else SampledHands(
            hand_model or hand_model_from_config(config), config, int(section["steps"]) * int(section["batch_size"]))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err}. Generate the synthetic set first (notebook 01_data_prep, or "
                                "wildhands.data.synthetic.generate_synthetic_set)") from err
    if stage == "finetune":
        train_set = WithheldLabels(train_set, float(section.get("withheld_3d_fraction", 0.0)),
                                   int(config.get("seed", 0)))
    return train_set, val_set


# ----------------------------------------------------------------------------- distributed

DDP_BACKENDS = ("auto", "nccl", "gloo")


def ddp_backend(config: dict, device_kind: str) -> str:
    """The process-group backend: ``[distributed] backend``, "auto" meaning NCCL on GPUs, gloo on the CPU."""
    backend = str(config.get("distributed", {}).get("backend", "auto"))
    if backend not in DDP_BACKENDS:
        raise ValueError(f"distributed.backend: expected one of {', '.join(DDP_BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "nccl" if device_kind == "cuda" else "gloo"
    if backend == "nccl" and device_kind != "cuda":
        raise ValueError("distributed.backend = 'nccl' needs CUDA GPUs; the device here is the CPU (use gloo)")
    return backend


def _distributed(backend: str) -> tuple[int, int, int]:
    """(rank, world size, local rank); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def autocast_dtype(config: dict, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the encoder's forward pass, or None for float32.

    ``[optim] amp`` (bf16 | fp16 | off) applies on GPUs; on the CPU only when ``[optim] amp_cpu``
    is true (the paper-dryrun profile: the GPU run's bf16 code path, proven on the CPU), and
    then only bf16, the one autocast dtype whose CPU kernels are complete.
    """
    optim = config["optim"]
    amp = str(optim.get("amp", "bf16"))
    if amp not in ("bf16", "fp16", "off"):
        raise ValueError(f"optim.amp: expected 'bf16', 'fp16' or 'off', got {amp!r}")
    if device.type != "cuda" and not bool(optim.get("amp_cpu", False)):
        return None
    if device.type != "cuda" and amp == "fp16":
        raise ValueError("optim.amp = 'fp16' with amp_cpu: CPU autocast runs bf16 only (set optim.amp = 'bf16')")
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]


# ----------------------------------------------------------------------------- training

def _lr_lambda(schedule: str, warmup: int, total: int):
    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
        if schedule == "cosine":
            return warm * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
        return warm
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"optim.schedule: expected 'constant' or 'cosine', got {schedule!r}")
    return factor


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _loader(samples: Dataset, sampler, workers: int, device: torch.device) -> DataLoader:
    return DataLoader(samples, batch_sampler=sampler, num_workers=workers, collate_fn=default_collate,
                      pin_memory=device.type == "cuda", persistent_workers=False)


def train(config: dict, stage: str = "pretrain", variant: str | None = None, init_checkpoint=None,
          resume: bool = False, datasets=None, hand_model: HandModel | None = None, run_dir=None,
          progress: bool = True, callback=None) -> TrainResult:
    """Train one stage of one input variant and return where it went.

    ``config``: a loaded profile (``config.load_profile``). ``stage``: "pretrain" (parameter
    supervision on synthetic samples) or "finetune" (eq. 5 on mixed 2D/3D/mask labels, starting
    from ``init_checkpoint``, by default this profile's pretraining result; a pretraining run
    whose ``[pretrain] init_variant`` names another input variant starts from that variant's
    network, by default its pretraining result in this profile). ``resume``: continue
    from ``run_dir/last.pt`` when it exists. ``datasets``: (train, val) data sets in the sample
    format (default: the synthetic set). ``callback(step, record)`` is called at each log step.
    """
    if stage not in TRAIN_STAGES:
        raise ValueError(f"stage: expected one of {', '.join(TRAIN_STAGES)}, got {stage!r}")
    config = variant_config(config, variant)
    variant = config["model"]["variant"]
    section = config[stage]
    seed, steps, batch_size = int(config.get("seed", 0)), int(section["steps"]), int(section["batch_size"])
    device = resolve_device(config)
    rank, world, local_rank = _distributed(ddp_backend(config, device.type))
    if device.type == "cuda" and world > 1:
        # More processes than GPUs share them round-robin (gpu_check.sh runs 2 processes on 1 GPU).
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    main_process = rank == 0
    run_dir = Path(run_dir) if run_dir else default_run_dir(config, stage)
    log_path = OUTPUTS_DIR / "logs" / f"{run_dir.name}.jsonl"

    hand_model = hand_model or hand_model_from_config(config)
    torch.manual_seed(seed)
    # ImageNet weights start fresh pretraining only; otherwise a checkpoint's weights replace them.
    from_checkpoint = stage == "finetune" or bool(section.get("init_variant"))
    model = build_model({**config, "model": {**config["model"], "pretrained": ""}} if from_checkpoint else config,
                        hand_model).to(device)
    optim = config["optim"]
    optimizer = torch.optim.Adam(model.encoder.parameters(), lr=float(section.get("lr", optim["lr"])),
                                 weight_decay=float(optim["weight_decay"]))
    warmup = int(section.get("warmup_steps", optim.get("warmup_steps", 0)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(optim.get("schedule", "constant"), warmup, steps))
    amp_dtype = autocast_dtype(config, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    start = 0
    last_path = run_dir / "last.pt"
    if resume and last_path.is_file():
        start = _resume(last_path, model, optimizer, scheduler, scaler, config, stage)
    if start == 0 and stage == "finetune":  # a fresh run, or a stale last.pt set aside
        init_checkpoint = Path(init_checkpoint) if init_checkpoint else default_run_dir(config, "pretrain") / "final.pt"
        load_encoder_weights(model, read_checkpoint(init_checkpoint), init_checkpoint)
    elif start == 0 and section.get("init_variant"):
        init_checkpoint = Path(init_checkpoint) if init_checkpoint else pretrained_variant_path(config)
        load_encoder_weights_from_variant(model, read_checkpoint(init_checkpoint), init_checkpoint)
    history = _start_log(log_path, start) if main_process else []

    train_set, val_set = datasets if datasets is not None else default_datasets(config, stage, hand_model)
    samples = TrainingSamples(train_set, config, variant, seed, stage=stage, augment=True,
                              noise=bool(config.get("noise", {}).get("enabled", True)),
                              with_masks=stage == "finetune")
    sampler = DrawBatches(len(samples), batch_size, seed, stage, start, steps, rank, world)
    loader = _loader(samples, sampler, int(section.get("workers", 0)), device)

    encoder = model.encoder
    # Channels-last convolutions: faster on GPU and on the CPU too (measured on 2 cores,
    # resnet10 at 64 px, batch 32: 384 ms per step against 490 ms).
    encoder.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    trained = torch.nn.parallel.DistributedDataParallel(encoder, device_ids=[device] if device.type == "cuda"
                                                        else None) if world > 1 else encoder
    loss_config = dict(config["loss"])
    weights = config["pretrain"]
    keypoint_term = float(weights.get("w_keypoints", 0.0)) > 0
    checkpoint_every = int(section.get("checkpoint_every", 0))
    log_every = max(1, int(section.get("log_every", 10)))

    def checkpoint(path: Path, step: int, metrics=None):
        save_checkpoint(path, model=model, config=config, stage=stage, step=step, optimizer=optimizer,
                        scheduler=scheduler, scaler=scaler, metrics=metrics,
                        data_state={"seed": seed, "stage": stage, "next_draw": step * batch_size,
                                    "batch_size": batch_size, "num_samples": len(samples)})

    model.train()
    bar = _progress(range(start, steps), f"{run_dir.name}", progress and main_process)
    running, tick, seen = {}, time.perf_counter(), 0
    for step, batch in zip(bar, loader):
        batch = _to_device(batch, device)
        x = batch_input(batch, variant, config).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            params = trained(x)
        if stage == "pretrain":
            # Keypoints (no mesh) for the logged errors; with gradient only when the keypoint term trains on them.
            with torch.set_grad_enabled(keypoint_term):
                output = model.decoder.keypoints_only(params if keypoint_term else params.detach())
            terms = parameter_losses(params, batch, weights, output, float(loss_config.get("l3d_unit_m", 0.1)))
        else:
            output = model.decoder(params)
            terms = reconstruction_losses(output, batch, loss_config)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(terms["loss"]).backward()
        if float(optim.get("grad_clip", 0.0)) > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(encoder.parameters(), float(optim["grad_clip"]))
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()

        with torch.no_grad():  # summed on the device; read (one sync) at log steps
            errors = keypoint_errors(output, batch)
            values = {name: value.detach() for name, value in terms.items()}
            values["mpjpe_3d_mm"] = errors["mpjpe_3d_mm"].nanmean()
            values["error_2d_px"] = errors["error_2d_px"].mean()
            for name, value in values.items():
                finite = torch.isfinite(value)
                total, count = running.get(name, (0.0, 0))
                running[name] = (total + torch.where(finite, value, 0.0), count + finite.int())
        seen += x.shape[0] * world
        done = step + 1
        if done % log_every == 0 or done == steps:
            elapsed = time.perf_counter() - tick
            record = {"step": done, "stage": stage, "variant": variant, "lr": scheduler.get_last_lr()[0],
                      "images_per_s": seen / max(elapsed, 1e-9), "world_size": world,
                      "autocast": str(amp_dtype or torch.float32).removeprefix("torch."),
                      **{k: float(total / count) for k, (total, count) in running.items() if count > 0}}
            running, tick, seen = {}, time.perf_counter(), 0
            if main_process:
                history.append(record)
                _append_log(log_path, record)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{record['loss']:.3g}", mm=f"{record['mpjpe_3d_mm']:.1f}")
            if callback is not None:
                callback(done, record)
        if main_process and checkpoint_every and done % checkpoint_every == 0 and done < steps:
            checkpoint(last_path, done)

    metrics = {}
    if main_process:
        model.eval()
        metrics = evaluate(model, val_set, config, noise=False) if val_set is not None and len(val_set) else {}
        if metrics and "2d" in variant:
            noisy = evaluate(model, val_set, config, noise=True)
            metrics.update({f"{k}_detector_noise": v for k, v in noisy.items() if k != "count"})
        final = run_dir / "final.pt"
        checkpoint(final, steps, metrics)
        _same_file(last_path, final)
    if world > 1:
        dist.barrier()
    return TrainResult(run_dir=run_dir, checkpoint=run_dir / "final.pt", log_path=log_path, history=history,
                       metrics=metrics, model=model.eval())


def pretrain(config: dict, variant: str | None = None, **kwargs) -> TrainResult:
    """Pretrain on synthetic samples, supervised by their parameters and camera (paper section 6)."""
    return train(config, "pretrain", variant=variant, **kwargs)


def finetune(config: dict, init_checkpoint=None, variant: str | None = None, **kwargs) -> TrainResult:
    """Fine-tune end to end with L2D + L3D + Lmask + Lreg (eq. 5) from a pretrained checkpoint."""
    return train(config, "finetune", variant=variant, init_checkpoint=init_checkpoint, **kwargs)


def _resume(path: Path, model, optimizer, scheduler, scaler, config: dict, stage: str) -> int:
    """Restore a run from ``path``; the step to continue from (0: the checkpoint belongs to another run)."""
    payload = read_checkpoint(path)
    different = _run_difference(payload, model.hand_model.hash, config, stage)
    if different:
        print(f"not resuming from {path}: {different}; starting this run over")
        return 0
    load_encoder_weights(model, payload, path)
    state = payload["training"]
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    restore_rng_states(state["rng"])
    return int(payload["step"])


def _run_difference(payload: dict, hand_model_hash: str, config: dict, stage: str) -> str:
    """Why a checkpoint is not a state of this run ("" when it is)."""
    if payload["stage"] != stage:
        return f"it is a {payload['stage']} run"
    if payload["hand_model"]["hash"] != hand_model_hash:
        return f"it was trained with hand model {payload['hand_model']['hash']}, not {hand_model_hash}"
    ignored = ("device", "distributed", *INFERENCE_TABLES)  # settings that do not change the trained weights
    changed = sorted(k for k in set(payload["config"]) | set(config)
                     if k not in ignored and payload["config"].get(k) != config.get(k))
    return f"the profile's {', '.join(changed)} changed" if changed else ""


def _same_file(path: Path, source: Path) -> None:
    """Make ``path`` hold ``source``'s contents: a hard link where the file system allows (a ResNet-50
    checkpoint with its Adam state is 280 MB), else a copy; atomically either way."""
    import shutil

    with atomic_path(path) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def _start_log(path: Path, start: int) -> list:
    """Records of an existing log up to step ``start`` (the log is rewritten to them); empty when starting."""
    kept = []
    if start > 0 and path.is_file():
        kept = [r for r in (json.loads(line) for line in path.read_text().splitlines() if line.strip())
                if r["step"] <= start]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return kept


def _append_log(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_log(path) -> list[dict]:
    """The records of a JSON-lines loss log."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"loss log {path} does not exist")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _progress(iterable, description: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=description, unit="step", dynamic_ncols=True)


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def predict_dataset(model: HandReconstructor, dataset, config: dict, noise: bool = False,
                    batch_size: int = 64, seed: int | None = None) -> dict:
    """Run ``model`` over ``dataset`` (no augmentation); numpy arrays of predictions and labels.

    ``noise``: feed heat-maps from detector-like keypoints instead of the clean labels.
    Returns the predicted keypoints (3D, 2D), reprojected vertices and parameters (N, 26) under
    ``pred_*``, the labels, per-sample errors and the network's input keypoints.
    """
    device = next(model.parameters()).device
    seed = int(config.get("seed", 0)) if seed is None else seed
    samples = TrainingSamples(dataset, config, model.variant, seed, stage="eval", augment=False, noise=noise)
    sampler = [[(i, i) for i in range(s, min(s + batch_size, len(samples)))]
               for s in range(0, len(samples), batch_size)]
    was_training = model.training
    model.eval()
    out = {}
    for batch in DataLoader(samples, batch_sampler=sampler, collate_fn=default_collate):
        batch = _to_device(batch, device)
        pred = model.predict(batch_input(batch, model.variant, config), quarter_turns(config))
        errors = keypoint_errors(pred, batch)
        rows = {"pred_keypoints_3d": pred.keypoints_3d, "pred_keypoints_2d": pred.keypoints_2d,
                "pred_vertices_2d": pred.vertices_2d, "pred_params": pred.params.vector(), "keypoints_3d": batch["keypoints_3d"],
                "keypoints_2d": batch["keypoints_2d"], "visible": batch["visible"], "has_3d": batch["has_3d"],
                "index": batch["index"], **errors}
        if "input_keypoints_2d" in batch:
            rows["input_keypoints_2d"] = batch["input_keypoints_2d"]
        for key, value in rows.items():
            out.setdefault(key, []).append(value.float().cpu().numpy() if value.is_floating_point()
                                           else value.cpu().numpy())
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate(model: HandReconstructor, dataset, config: dict, noise: bool = False, batch_size: int = 64) -> dict:
    """Mean root-aligned 3D keypoint error (mm, over 21 keypoints) and 2D error (px at 320) on ``dataset``."""
    pred = predict_dataset(model, dataset, config, noise=noise, batch_size=batch_size)
    return {"mpjpe_3d_mm": float(np.nanmean(pred["mpjpe_3d_mm"])), "error_2d_px": float(pred["error_2d_px"].mean()),
            "count": int(len(pred["index"]))}


# ----------------------------------------------------------------------------- command line

def parse_args(argv):
    parser = argparse.ArgumentParser(prog="wildhands train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="quick", help="profile name (smoke, quick, paper) or TOML path")
    parser.add_argument("--stage", choices=TRAIN_STAGES + ("all",), default="all",
                        help="pretrain, finetune, or both in turn (default)")
    parser.add_argument("--variant", choices=("rgb", "2d", "rgb+2d"), default=None,
                        help="input variant (default: the profile's model.variant)")
    parser.add_argument("--init", default=None, help="checkpoint to fine-tune from (default: this profile's "
                                                     "pretraining result)")
    parser.add_argument("--resume", action="store_true", help="continue a killed run from its last.pt")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a profile setting, e.g. --set finetune.steps=100 (repeatable)")
    parser.add_argument("--run-dir", default=None, help="checkpoint folder (default: outputs/checkpoints/"
                                                         "<profile>-<variant>-<stage>; with --stage all, the "
                                                         "stage is appended)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        overrides = parse_set_arguments(args.overrides)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    config = load_profile(args.config, overrides)
    stages = TRAIN_STAGES if args.stage == "all" else (args.stage,)
    for stage in stages:
        run_dir = None if args.run_dir is None else Path(f"{args.run_dir}-{stage}" if len(stages) > 1 else args.run_dir)
        result = train(config, stage, variant=args.variant, init_checkpoint=args.init if stage == "finetune" else None,
                       resume=args.resume, progress=not args.no_progress, run_dir=run_dir)
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"{stage}: {result.checkpoint}  log {result.log_path}  {json.dumps(result.metrics)}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0
