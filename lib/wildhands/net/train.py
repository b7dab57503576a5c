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

The profile's tables are read once, at the start of a stage, into ``TrainSettings`` (the stage's
``StageSettings``, ``[optim]``'s ``OptimSettings``, the network input's ``InputSettings``); a
missing key is an error naming it. ``train`` runs in named steps: set-up, the starting step
(resume or initial weights), the loader, the optimisation steps and the final evaluation.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, default_collate

from wildhands.config import (INFERENCE_TABLES, TableSettings, load_profile, parse_set_arguments, setting,
                              settings_from_table, table)
from wildhands.data.datasets import paper_training_mixture
from wildhands.data.synthetic import SampledHands, SyntheticHandDataset, synthetic_root
from wildhands.fileio import atomic_path
from wildhands.hand.hand_model import HandModel, hand_model_from_config
from wildhands.net.checkpoints import (load_encoder_weights, load_encoder_weights_from_variant, read_checkpoint,
                                       restore_rng_states, save_checkpoint)
from wildhands.net.encoder import VARIANTS, check_variant
from wildhands.net.inference import inference_quarter_turns
from wildhands.net.losses import (LossSettings, ParameterWeights, keypoint_errors, parameter_losses,
                                  reconstruction_losses)
from wildhands.net.model import HandReconstructor, build_model
from wildhands.net.samples import STAGES, InputSettings, TrainingSamples
from wildhands.net.variants import TRAIN_STAGES, variant_config
from wildhands.paths import OUTPUTS_DIR


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

@dataclass(frozen=True)
class OptimSettings(TableSettings):
    """The ``[optim]`` table: Adam, its learning-rate schedule, gradient clipping and autocast."""
    TABLE = "optim"
    lr: float
    weight_decay: float
    schedule: str              # constant | cosine
    warmup_steps: int
    grad_clip: float           # max gradient norm; 0: off
    amp: str                   # bf16 | fp16 | off
    amp_cpu: bool


@dataclass(frozen=True)
class StageSettings:
    """A training stage's table (``[pretrain]`` or ``[finetune]``).

    ``lr`` and ``warmup_steps`` are the stage's where it sets them, else ``[optim]``'s.
    ``init_variant`` (pretraining only, None at fine-tuning): the variant whose pretrained network
    this one starts from ("" for none); ``withheld_3d_fraction`` (fine-tuning only, None at
    pretraining): the synthetic samples whose 3D labels are hidden.
    """
    name: str
    steps: int
    batch_size: int
    checkpoint_every: int      # last.pt every this many steps; 0: only at the end
    log_every: int
    workers: int               # DataLoader worker processes
    data: str                  # rendered | sampled
    lr: float
    warmup_steps: int
    init_variant: str | None
    withheld_3d_fraction: float | None

    @classmethod
    def from_config(cls, config: dict, stage: str) -> "StageSettings":
        if stage not in TRAIN_STAGES:
            raise ValueError(f"stage: expected one of {', '.join(TRAIN_STAGES)}, got {stage!r}")
        section = table(config, stage)

        def own_or_optim(key: str):     # config.STAGE_OPTIM_KEYS
            return section[key] if key in section else setting(config, "optim", key)

        settings = settings_from_table(
            cls, config, stage, name=stage, lr=float(own_or_optim("lr")),
            warmup_steps=int(own_or_optim("warmup_steps")),
            init_variant=str(setting(config, stage, "init_variant")) if stage == "pretrain" else None,
            withheld_3d_fraction=float(setting(config, stage, "withheld_3d_fraction")) if stage == "finetune" else None)
        if settings.data not in ("rendered", "sampled"):
            raise ValueError(f"{stage}.data: expected 'rendered' or 'sampled', got {settings.data!r}")
        return settings


@dataclass(frozen=True)
class TrainSettings:
    """What a training stage reads of a variant's profile (``variant_config``), read once at its start."""
    variant: str
    seed: int
    stage: StageSettings
    optim: OptimSettings
    inputs: InputSettings
    noise: bool                # [noise] enabled: detector-like keypoints feed the heat-maps
    loss: LossSettings                  # [loss]: fine-tuning's weights, L3D's unit
    pretrain_weights: ParameterWeights  # [pretrain] w_*: pretraining's (w_keypoints > 0: the decoded keypoints too)

    @classmethod
    def from_config(cls, config: dict, stage: str) -> "TrainSettings":
        return cls(variant=check_variant(setting(config, "model", "variant")), seed=int(setting(config, "", "seed")),
                   stage=StageSettings.from_config(config, stage), optim=OptimSettings.from_config(config),
                   inputs=InputSettings.from_config(config), noise=bool(setting(config, "noise", "enabled")),
                   loss=LossSettings.from_config(config), pretrain_weights=ParameterWeights.from_config(config))


def run_name(config: dict, stage: str) -> str:
    return f"{setting(config, '', 'profile')}-{setting(config, 'model', 'variant')}-{stage}"


def default_run_dir(config: dict, stage: str) -> Path:
    return OUTPUTS_DIR / "checkpoints" / run_name(config, stage)


def pretrained_variant_path(config: dict) -> Path:
    """The final pretraining checkpoint of the variant ``[pretrain] init_variant`` names, in this profile."""
    other = check_variant(setting(config, "pretrain", "init_variant"))
    if other == setting(config, "model", "variant"):
        raise ValueError(f"pretrain.init_variant: {other!r} is the variant being trained")
    path = default_run_dir({**config, "model": {**config["model"], "variant": other}}, "pretrain") / "final.pt"
    if not path.is_file():
        raise FileNotFoundError(f"pretrain.init_variant: no pretrained {other!r} network at {path}; pretrain "
                                f"that variant first (python -m wildhands train --variant {other})")
    return path


def resolve_device(config: dict) -> torch.device:
    wanted = str(setting(config, "", "device"))
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
    setting picks the training set: "rendered" the generated synthetic set, part of it
    with its 3D labels withheld at fine-tuning (``withheld_3d_fraction``) to stand for 2D-only
    sets; "sampled" label-only hands drawn on the fly (``SampledHands``: one fresh hand per
    draw, for the 2D variant, which never sees pixels). Validation is the rendered val split.
    """
    section = StageSettings.from_config(config, stage)
    variant = setting(config, "model", "variant")
    if section.data == "sampled" and "rgb" in variant:
        raise ValueError(f"{stage}.data = 'sampled' has no images; variant {variant!r} needs them")
    real = paper_training_mixture(config) if stage == "finetune" else None
    root = synthetic_root(config)
    try:
        val_set = SyntheticHandDataset(root, "val")
        if real is not None:
            return real, val_set
        train_set = SyntheticHandDataset(root, "train") if section.data == "rendered" else SampledHands(
            hand_model or hand_model_from_config(config), config, section.steps * section.batch_size)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err}. Generate the synthetic set first (notebook 01_data_prep, or "
                                "wildhands.data.synthetic.generate_synthetic_set)") from err
    if stage == "finetune":
        train_set = WithheldLabels(train_set, section.withheld_3d_fraction, int(setting(config, "", "seed")))
    return train_set, val_set


# ----------------------------------------------------------------------------- distributed

DDP_BACKENDS = ("auto", "nccl", "gloo")


def ddp_backend(config: dict, device_kind: str) -> str:
    """The process-group backend: ``[distributed] backend``, "auto" meaning NCCL on GPUs, gloo on the CPU."""
    backend = str(setting(config, "distributed", "backend"))
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
    optim = OptimSettings.from_config(config)
    if optim.amp not in ("bf16", "fp16", "off"):
        raise ValueError(f"optim.amp: expected 'bf16', 'fp16' or 'off', got {optim.amp!r}")
    if device.type != "cuda" and not optim.amp_cpu:
        return None
    if device.type != "cuda" and optim.amp == "fp16":
        raise ValueError("optim.amp = 'fp16' with amp_cpu: CPU autocast runs bf16 only (set optim.amp = 'bf16')")
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[optim.amp]


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


@dataclass
class _Run:
    """A stage set up to train: its settings, this process's place, the network and optimiser state."""
    config: dict               # the variant's profile (saved in every checkpoint)
    settings: TrainSettings
    device: torch.device
    rank: int
    world: int
    run_dir: Path
    hand_model: HandModel
    model: HandReconstructor
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    num_samples: int = 0       # the training set's size, once known (recorded in checkpoints)

    @property
    def main_process(self) -> bool:
        return self.rank == 0

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def log_path(self) -> Path:
        return OUTPUTS_DIR / "logs" / f"{self.run_dir.name}.jsonl"


def train(config: dict, stage: str = "pretrain", variant: str | None = None, init_checkpoint=None,
          resume: bool = False, datasets=None, hand_model: HandModel | None = None, run_dir=None,
          progress: bool = True, callback=None) -> TrainResult:
    """Train one stage of one input variant and return where it went.

    ``config``: a loaded profile (``config.load_profile``). ``stage``: "pretrain" (parameter
    supervision on synthetic samples) or "finetune" (eq. 5 on mixed 2D/3D/mask labels, starting
    from ``init_checkpoint``, by default this profile's pretraining result; a pretraining run
    whose ``[pretrain] init_variant`` names another input variant starts from that variant's
    network, by default its pretraining result in this profile; one given ``init_checkpoint``
    starts from it whatever ``init_variant`` says). A checkpoint of another input variant is
    taken over as ``checkpoints.load_encoder_weights_from_variant`` says. ``resume``: continue
    from ``run_dir/last.pt`` when it exists. ``datasets``: (train, val) data sets in the sample
    format (default: the synthetic set). ``callback(step, record)`` is called at each log step.
    """
    if stage not in TRAIN_STAGES:
        raise ValueError(f"stage: expected one of {', '.join(TRAIN_STAGES)}, got {stage!r}")
    run = _set_up(variant_config(config, variant), stage, hand_model, run_dir, init_checkpoint is not None)
    start = _starting_step(run, resume, init_checkpoint)
    history = _start_log(run.log_path, start) if run.main_process else []
    train_set, val_set = datasets if datasets is not None else default_datasets(run.config, stage, run.hand_model)
    loader = _training_loader(run, train_set, start)
    _train_steps(run, loader, start, history, progress, callback)
    metrics = _finish(run, val_set)
    return TrainResult(run_dir=run.run_dir, checkpoint=run.run_dir / "final.pt", log_path=run.log_path,
                       history=history, metrics=metrics, model=run.model.eval())


def _set_up(config: dict, stage: str, hand_model: HandModel | None, run_dir, init_given: bool = False) -> _Run:
    """Settings, device and process group, the seeded network, its optimiser and schedule
    (``init_given``: the run starts from a given checkpoint)."""
    settings = TrainSettings.from_config(config, stage)
    device = resolve_device(config)
    rank, world, local_rank = _distributed(ddp_backend(config, device.type))
    if device.type == "cuda" and world > 1:
        # More processes than GPUs share them round-robin (gpu_check.sh runs 2 processes on 1 GPU).
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    run_dir = Path(run_dir) if run_dir else default_run_dir(config, stage)
    hand_model = hand_model or hand_model_from_config(config)
    torch.manual_seed(settings.seed)
    # ImageNet weights start fresh pretraining only; otherwise a checkpoint's weights replace them.
    from_checkpoint = stage == "finetune" or bool(settings.stage.init_variant) or init_given
    model = build_model({**config, "model": {**config["model"], "pretrained": ""}} if from_checkpoint else config,
                        hand_model).to(device)
    optimizer = torch.optim.Adam(model.encoder.parameters(), lr=settings.stage.lr,
                                 weight_decay=settings.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(settings.optim.schedule, settings.stage.warmup_steps, settings.stage.steps))
    amp_dtype = autocast_dtype(config, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    return _Run(config, settings, device, rank, world, run_dir, hand_model, model, optimizer, scheduler, scaler,
                amp_dtype)


def _starting_step(run: _Run, resume: bool, init_checkpoint) -> int:
    """Resume from ``last.pt`` when asked and it belongs to this run, else load the starting weights:
    fine-tuning from a pretrained network, pretraining from ``init_checkpoint`` or ``init_variant``'s.
    The step to start at."""
    start = 0
    if resume and run.last_path.is_file():
        start = _resume(run.last_path, run.model, run.optimizer, run.scheduler, run.scaler, run.config,
                        run.settings.stage.name)
    if start == 0 and run.settings.stage.name == "finetune":  # a fresh run, or a stale last.pt set aside
        init_checkpoint = Path(init_checkpoint) if init_checkpoint else \
            default_run_dir(run.config, "pretrain") / "final.pt"
        _load_initial_weights(run.model, init_checkpoint)
    elif start == 0 and (init_checkpoint or run.settings.stage.init_variant):
        init_checkpoint = Path(init_checkpoint) if init_checkpoint else pretrained_variant_path(run.config)
        _load_initial_weights(run.model, init_checkpoint)
    return start


def _load_initial_weights(model: HandReconstructor, path: Path) -> None:
    """A run's starting weights from the checkpoint ``path``: as they are for the same input variant,
    else conv1 adapted (``load_encoder_weights_from_variant``)."""
    payload = read_checkpoint(path)
    if payload["variant"] == model.variant:
        load_encoder_weights(model, payload, path)
    else:
        load_encoder_weights_from_variant(model, payload, path)


def _training_loader(run: _Run, train_set, start: int) -> DataLoader:
    """The process's batches from step ``start`` on: augmented, detector-noised draws of ``train_set``."""
    settings, stage = run.settings, run.settings.stage
    samples = TrainingSamples(train_set, run.config, settings.variant, settings.seed, stage=stage.name, augment=True,
                              noise=settings.noise, with_masks=stage.name == "finetune")
    run.num_samples = len(samples)
    sampler = DrawBatches(len(samples), stage.batch_size, settings.seed, stage.name, start, stage.steps,
                          run.rank, run.world)
    return _loader(samples, sampler, stage.workers, run.device)


def _trained_encoder(run: _Run) -> torch.nn.Module:
    """The encoder in channels-last memory format, wrapped for DistributedDataParallel under torchrun."""
    encoder = run.model.encoder
    # Channels-last convolutions: faster on GPU and on the CPU too (measured on 2 cores,
    # resnet10 at 64 px, batch 32: 384 ms per step against 490 ms).
    encoder.to(memory_format=torch.channels_last)
    if run.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if run.world == 1:
        return encoder
    return torch.nn.parallel.DistributedDataParallel(encoder, device_ids=[run.device] if run.device.type == "cuda"
                                                     else None)


def _train_steps(run: _Run, loader: DataLoader, start: int, history: list, progress: bool, callback) -> None:
    """The optimisation steps from ``start``: a log record every ``log_every`` steps, ``last.pt`` every
    ``checkpoint_every``."""
    trained, stage = _trained_encoder(run), run.settings.stage
    log_every = max(1, stage.log_every)
    run.model.train()
    bar = _progress(range(start, stage.steps), f"{run.run_dir.name}", progress and run.main_process)
    running, tick, seen = {}, time.perf_counter(), 0
    for step, batch in zip(bar, loader):
        batch = _to_device(batch, run.device)
        x, output, terms = _train_step(run, trained, batch)
        _accumulate(running, terms, output, batch)
        seen += x.shape[0] * run.world
        done = step + 1
        if done % log_every == 0 or done == stage.steps:
            elapsed = time.perf_counter() - tick
            record = _log_record(run, done, running, seen / max(elapsed, 1e-9))
            running, tick, seen = {}, time.perf_counter(), 0
            if run.main_process:
                history.append(record)
                _append_log(run.log_path, record)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{record['loss']:.3g}", mm=f"{record['mpjpe_3d_mm']:.1f}")
            if callback is not None:
                callback(done, record)
        if run.main_process and stage.checkpoint_every and done % stage.checkpoint_every == 0 and done < stage.steps:
            _save(run, run.last_path, done)


def _train_step(run: _Run, trained: torch.nn.Module, batch: dict):
    """One optimisation step on ``batch``: (network input, decoded output, loss terms)."""
    settings = run.settings
    x = settings.inputs.batch_input(batch, settings.variant).contiguous(memory_format=torch.channels_last)
    with torch.autocast(run.device.type, dtype=run.amp_dtype or torch.bfloat16, enabled=run.amp_dtype is not None):
        params = trained(x)
    if settings.stage.name == "pretrain":
        # Keypoints (no mesh) for the logged errors; with gradient only when the keypoint term trains on them.
        keypoint_term = settings.pretrain_weights.w_keypoints > 0
        with torch.set_grad_enabled(keypoint_term):
            output = run.model.decoder.keypoints_only(params if keypoint_term else params.detach())
        terms = parameter_losses(params, batch, settings.pretrain_weights, output, settings.loss.l3d_unit_m)
    else:
        output = run.model.decoder(params)
        terms = reconstruction_losses(output, batch, settings.loss)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(terms["loss"]).backward()
    if settings.optim.grad_clip > 0:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.encoder.parameters(), settings.optim.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    return x, output, terms


@torch.no_grad()
def _accumulate(running: dict, terms: dict, output, batch: dict) -> None:
    """Add a step's loss terms and errors to ``running`` (name -> (sum, count of finite values)),
    summed on the device: read, with one sync, at log steps only."""
    errors = keypoint_errors(output, batch)
    values = {name: value.detach() for name, value in terms.items()}
    values["mpjpe_3d_mm"] = errors["mpjpe_3d_mm"].nanmean()
    values["error_2d_px"] = errors["error_2d_px"].mean()
    for name, value in values.items():
        finite = torch.isfinite(value)
        total, count = running.get(name, (0.0, 0))
        running[name] = (total + torch.where(finite, value, 0.0), count + finite.int())


def _log_record(run: _Run, done: int, running: dict, images_per_s: float) -> dict:
    """The loss log's record of the steps since the last one: every term's mean, speed and settings."""
    return {"step": done, "stage": run.settings.stage.name, "variant": run.settings.variant,
            "lr": run.scheduler.get_last_lr()[0], "images_per_s": images_per_s, "world_size": run.world,
            "autocast": str(run.amp_dtype or torch.float32).removeprefix("torch."),
            **{k: float(total / count) for k, (total, count) in running.items() if count > 0}}


def _save(run: _Run, path: Path, step: int, metrics=None) -> None:
    """A checkpoint of the run at ``step``, with where the data stream stands."""
    batch_size = run.settings.stage.batch_size
    save_checkpoint(path, model=run.model, config=run.config, stage=run.settings.stage.name, step=step,
                    optimizer=run.optimizer, scheduler=run.scheduler, scaler=run.scaler, metrics=metrics,
                    data_state={"seed": run.settings.seed, "stage": run.settings.stage.name,
                                "next_draw": step * batch_size, "batch_size": batch_size,
                                "num_samples": run.num_samples})


def _finish(run: _Run, val_set) -> dict:
    """Validation metrics (also with detector-like keypoints for the 2D variants) and ``final.pt``
    (``last.pt`` the same file), on the main process; the others wait for it."""
    metrics = {}
    if run.main_process:
        run.model.eval()
        metrics = evaluate(run.model, val_set, run.config, noise=False) if val_set is not None and len(val_set) else {}
        if metrics and "2d" in run.settings.variant:
            noisy = evaluate(run.model, val_set, run.config, noise=True)
            metrics.update({f"{k}_detector_noise": v for k, v in noisy.items() if k != "count"})
        final = run.run_dir / "final.pt"
        _save(run, final, run.settings.stage.steps, metrics)
        _same_file(run.last_path, final)
    if run.world > 1:
        dist.barrier()
    return metrics


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
                    batch_size: int = 64, seed: int | None = None, quarter_turns: int | None = None) -> dict:
    """Run ``model`` over ``dataset`` (no augmentation); numpy arrays of predictions and labels.

    ``noise``: feed heat-maps from detector-like keypoints instead of the clean labels (and a depth
    variant simulated world landmarks instead of the true depths, where a sample has no
    ``world_landmarks`` (21, 3) of its own: ``TrainingSamples``).
    ``quarter_turns``: test-time averaging (``InferenceSettings``; None: ``config``'s ``[inference]``).
    Returns the predicted keypoints (3D, 2D), reprojected vertices and parameters (N, 26) under
    ``pred_*``, the labels, per-sample errors and the network's input keypoints (and depth cues).
    """
    device = next(model.parameters()).device
    seed = int(setting(config, "", "seed")) if seed is None else seed
    inputs = InputSettings.from_config(config)
    turns = inference_quarter_turns(config) if quarter_turns is None else quarter_turns
    samples = TrainingSamples(dataset, config, model.variant, seed, stage="eval", augment=False, noise=noise)
    sampler = [[(i, i) for i in range(s, min(s + batch_size, len(samples)))]
               for s in range(0, len(samples), batch_size)]
    was_training = model.training
    model.eval()
    out = {}
    for batch in DataLoader(samples, batch_sampler=sampler, collate_fn=default_collate):
        batch = _to_device(batch, device)
        pred = model.predict(inputs.batch_input(batch, model.variant), turns)
        errors = keypoint_errors(pred, batch)
        rows = {"pred_keypoints_3d": pred.keypoints_3d, "pred_keypoints_2d": pred.keypoints_2d,
                "pred_vertices_2d": pred.vertices_2d, "pred_params": pred.params.to_vector(), "keypoints_3d": batch["keypoints_3d"],
                "keypoints_2d": batch["keypoints_2d"], "visible": batch["visible"], "has_3d": batch["has_3d"],
                "index": batch["index"], **errors}
        for given in ("input_keypoints_2d", "input_depth"):
            if given in batch:
                rows[given] = batch[given]
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
    parser.add_argument("--variant", choices=tuple(VARIANTS), default=None,
                        help="input variant (default: the profile's model.variant)")
    parser.add_argument("--init", default=None,
                        help="checkpoint to start from, of this or another input variant with the same backbone "
                             "(default: fine-tuning from this profile's pretraining result, pretraining from "
                             "pretrain.init_variant's or from scratch); with --stage all, fine-tuning's")
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
        init = args.init if stage == "finetune" or len(stages) == 1 else None
        result = train(config, stage, variant=args.variant, init_checkpoint=init, resume=args.resume,
                       progress=not args.no_progress, run_dir=run_dir)
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"{stage}: {result.checkpoint}  log {result.log_path}  {json.dumps(result.metrics)}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0
