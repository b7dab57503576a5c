"""Training throughput: images per second of a full training step, per input variant and backbone.

A step is what ``wildhands.net.train`` does: draw and augment samples, detector-like noise, heat-maps,
encoder forward and backward, decoder, loss, Adam step. Measured on the synthetic set (generate
it first: notebook 01 or ``wildhands.data.synthetic.generate_synthetic_set``), on this machine's CPU
(or GPU with --device cuda), after warm-up steps.

    python benchmarks/bench_train.py [--profile quick] [--backbones resnet18 resnet34 resnet50]
        [--variants rgb 2d rgb+2d] [--stages pretrain finetune] [--steps 5] [--batch-size 32]
    python benchmarks/bench_train.py --sensitivities

Prints a table and writes outputs/metrics/bench_train.json. ``--sensitivities`` instead prints
what the ``[pretrain]`` weights are derived from: the mean squared reprojection displacement
(px^2 at the 320 crop) that a unit error of each parameter group causes, for the profile's hand
model over random poses, shapes and views.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from torch.utils.data import default_collate

from wildhands.config import load_profile
from wildhands.fileio import write_json
from wildhands.hand.camera import axis_angle_to_matrix, weak_perspective_project
from wildhands.hand.hand_model import hand_model_from_config
from wildhands.net.losses import LossSettings, ParameterWeights, parameter_losses, reconstruction_losses
from wildhands.net.model import build_model, initial_camera
from wildhands.net.samples import TrainingSamples, batch_input
from wildhands.net.train import default_datasets, resolve_device, variant_config
from wildhands.paths import output_dir


def images_per_second(config: dict, hand_model, dataset, stage: str, steps: int, warmup: int, batch_size: int,
                      device) -> float:
    variant = config["model"]["variant"]
    torch.manual_seed(0)
    model = build_model(config, hand_model).to(device).train()
    model.encoder.to(memory_format=torch.channels_last)   # as wildhands.net.train runs it
    optimizer = torch.optim.Adam(model.encoder.parameters(), lr=1e-4)
    samples = TrainingSamples(dataset, config, variant, seed=0, stage=stage, with_masks=stage == "finetune")
    start = None
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        draws = range(step * batch_size, (step + 1) * batch_size)
        batch = default_collate(samples.__getitems__([(d % len(samples), d) for d in draws]))
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        params = model.encoder(batch_input(batch, variant, config).contiguous(memory_format=torch.channels_last))
        if stage == "pretrain":
            loss = parameter_losses(params, batch, ParameterWeights.from_config(config))["loss"]
        else:
            loss = reconstruction_losses(model.decoder(params), batch, LossSettings.from_config(config))["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - start)


@torch.no_grad()
def parameter_sensitivities(hand_model, config: dict, count: int = 256, step: float = 0.05) -> dict:
    """px^2 of mean squared keypoint displacement per unit of each pretraining term's raw error."""
    g = torch.Generator().manual_seed(0)
    (tx, ty), s0 = initial_camera(hand_model, int(config["preprocess"]["crop_size"]),
                                  float(config["preprocess"]["crop_scale"]))
    nb, npose = hand_model.num_betas, hand_model.num_pca_comps
    pose = torch.rand(count, npose, generator=g) * 4 - 2
    betas = torch.randn(count, nb, generator=g).clamp(-2, 2)
    rotation = axis_angle_to_matrix(torch.randn(count, 3, generator=g))
    scale, trans = torch.full((count,), s0), torch.tensor([tx, ty]).expand(count, 2)

    def project(betas=betas, pose=pose, rotation=rotation, scale=scale):
        hand = hand_model(betas=betas, pose=pose)
        return weak_perspective_project(hand.keypoints, rotation, scale, trans, hand.keypoints[:, 0])

    base = project()
    displacement = lambda moved: float((moved - base).square().sum(-1).mean())  # noqa: E731
    signs = lambda n: (torch.randint(0, 2, (count, n), generator=g) * 2 - 1) * step  # noqa: E731
    tilt = torch.randn(count, 3, generator=g)
    tilt = axis_angle_to_matrix(tilt / tilt.norm(dim=1, keepdim=True) * step)
    return {
        "rotation": displacement(project(rotation=tilt @ rotation))
        / float((tilt @ rotation - rotation).square().sum((-1, -2)).mean()),
        "trans": 100.0,  # the term is |dt|^2 / 100
        "scale": displacement(project(scale=scale * np.exp(step))) / step ** 2,
        "betas": displacement(project(betas=betas + signs(nb))) / step ** 2,
        "pose": displacement(project(pose=pose + signs(npose))) / step ** 2,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--variants", nargs="+", default=["rgb", "2d", "rgb+2d"])
    parser.add_argument("--backbones", nargs="+", default=None,
                        help="default: each variant's backbone in the profile, then resnet18/34/50")
    parser.add_argument("--stages", nargs="+", default=["pretrain", "finetune"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sensitivities", action="store_true",
                        help="print the reprojection sensitivities behind the [pretrain] weights")
    args = parser.parse_args(argv)

    base = load_profile(args.profile)
    if args.sensitivities:
        hand_model = hand_model_from_config(base)
        print(f"hand model {hand_model.name} ({hand_model.hash}); px^2 per unit raw error, and / 100:")
        for name, value in parameter_sensitivities(hand_model, base).items():
            print(f"  {name:9} {value:10.1f}  {value / 100:8.2f}   (profile w_{name} = {base['pretrain'][f'w_{name}']})")
        return 0
    device = resolve_device(base)
    hand_model = hand_model_from_config(base).to(device)
    rows = []
    print(f"{'variant':8} {'backbone':9} {'input':>5} {'stage':9} {'images/s':>9}")
    for variant in args.variants:
        config = variant_config(base, variant)
        backbones = args.backbones or [config["model"]["backbone"]]
        for backbone in backbones:
            config_b = {**config, "model": {**config["model"], "backbone": backbone}}
            for stage in args.stages:
                dataset, _ = default_datasets(config_b, stage)
                speed = images_per_second(config_b, hand_model, dataset, stage, args.steps, args.warmup,
                                          args.batch_size, device)
                size = config_b["model"]["input_size"]
                rows.append({"variant": variant, "backbone": backbone, "input_size": size, "stage": stage,
                             "images_per_s": speed})
                print(f"{variant:8} {backbone:9} {size:5d} {stage:9} {speed:9.1f}", flush=True)
    info = {"profile": args.profile, "device": str(device), "torch_threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "batch_size": args.batch_size, "rows": rows}
    path = write_json(output_dir("metrics") / "bench_train.json", info)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
