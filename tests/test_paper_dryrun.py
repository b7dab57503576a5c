"""The paper profile's code path end to end on the CPU (``python -m wildhands dryrun``; issue 19).

One run of about a minute and a half on 2 cores: ResNet-50 from the "ImageNet" weights path,
bf16 autocast, channels-last, the real-format fixtures of every paper set with GrabCut masks,
2 + 2 steps of batch 2, a killed and resumed fine-tuning, the real-set evaluation and 2-process
gloo DDP through torchrun. Only the network input is shrunk further here (48 px instead of 320):
this CPU has no bf16 units, and a ResNet-50 step at 320 in bf16 takes about 30 s on it
(``./run_all.sh --profile paper-dryrun`` runs at 320).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from wildhands.data.datasets import PAPER_TEST

TEST_INPUT_SIZE = 48   # the smallest at which DDP's one sample per process still gives batch norm 2x2 values


@pytest.mark.slow
def test_paper_dryrun_trains_resumes_evaluates_and_runs_ddp(tmp_path):
    outputs, work = tmp_path / "outputs", tmp_path / "work"
    done = subprocess.run([sys.executable, "-m", "wildhands", "dryrun", "--input-size", str(TEST_INPUT_SIZE),
                           "--out", str(work)], env={**os.environ, "WILDHANDS_OUTPUTS": str(outputs)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    report = json.loads((work / "report.json").read_text())
    try:
        assert report["network_input"] == TEST_INPUT_SIZE and report["variant"] == "rgb+2d"
        assert report["checks"][0].startswith("pretrain: 106 convolutions bf16 from channels-last inputs")
        assert report["checks"][1:] == ["finetune: killed after step 1, resumed to step 2",
                                        "torchrun: 1 step on 2 gloo processes"]
        assert set(report["data"]) == {"stb", "panoptic", "mpii_nzsl", "dexter_object", "egodexter"}
        assert report["mixture"] == {"stb": {"samples": 10, "with_3d": 10, "with_mask": 0},
                                     "panoptic": {"samples": 2, "with_3d": 0, "with_mask": 2},
                                     "mpii_nzsl": {"samples": 2, "with_3d": 0, "with_mask": 2}}
        assert len(report["real_sets"]) == len(PAPER_TEST)
        assert all(methods == ["Ours RGB+2D", "2D fit"] for methods in report["real_sets"].values())
        assert all("| method | paper mean" in table for table in report["tables"].values())
        masks = list((outputs / "data" / "masks").glob("*.png"))
        assert len(masks) == 4
        logs = {p.stem for p in (outputs / "logs").glob("*.jsonl")}
        assert logs == {"paper-dryrun-rgb+2d-pretrain", "paper-dryrun-rgb+2d-finetune", "ddp-finetune"}
        print(json.dumps(report["steps_s"], indent=1))
    finally:
        shutil.rmtree(outputs / "checkpoints", ignore_errors=True)   # ResNet-50 checkpoints: 280 MB each
        shutil.rmtree(work / "ddp-finetune", ignore_errors=True)
        shutil.rmtree(work / "torch", ignore_errors=True)


def _flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and key != "variants":
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_paper_dryrun_profile_changes_only_counts_sizes_and_the_device():
    from wildhands.config import load_profile

    paper, dry = _flat(load_profile("paper")), _flat(load_profile("paper-dryrun"))
    changed = {key for key in paper.keys() | dry.keys() if paper.get(key) != dry.get(key)}
    counts = {f"synthetic.{k}" for k in ("num_train", "num_val", "num_test", "shard_size", "workers")}
    counts |= {f"{stage}.{k}" for stage in ("pretrain", "finetune")
               for k in ("steps", "batch_size", "checkpoint_every", "log_every", "workers")}
    assert changed == counts | {"profile", "device", "optim.amp_cpu", "distributed.backend",
                                "fit2d.iterations", "fit2d.num_inits"}
    assert dry["model.backbone"] == "resnet50" and dry["model.input_size"] == 320
    assert dry["model.pretrained"] == "imagenet" and dry["optim.amp"] == "bf16"


def test_cpu_autocast_and_ddp_backend_only_where_the_profile_asks():
    import torch

    from wildhands.config import load_profile
    from wildhands.net.train import autocast_dtype, ddp_backend

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(load_profile("quick"), cpu) is None            # the CPU profiles stay float32
    assert autocast_dtype(load_profile("paper-dryrun"), cpu) == torch.bfloat16
    assert autocast_dtype(load_profile("paper"), cuda) == torch.bfloat16
    assert autocast_dtype(load_profile("quick", {"optim.amp": "fp16"}), cuda) == torch.float16
    assert autocast_dtype(load_profile("quick", {"optim.amp": "off"}), cuda) is None
    with pytest.raises(ValueError, match="CPU autocast runs bf16 only"):
        autocast_dtype(load_profile("paper-dryrun", {"optim.amp": "fp16"}), cpu)
    with pytest.raises(ValueError, match="optim.amp"):
        autocast_dtype(load_profile("quick", {"optim.amp": "bf32"}), cuda)
    assert ddp_backend(load_profile("paper"), "cuda") == "nccl" and ddp_backend(load_profile("quick"), "cpu") == "gloo"
    assert ddp_backend(load_profile("paper-dryrun"), "cpu") == "gloo"
    assert ddp_backend(load_profile("paper", {"distributed.backend": "gloo"}), "cuda") == "gloo"
    with pytest.raises(ValueError, match="needs CUDA GPUs"):
        ddp_backend(load_profile("quick", {"distributed.backend": "nccl"}), "cpu")
