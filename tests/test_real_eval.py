"""Real-data evaluation and fine-tuning on the real-data mixture, on tiny fixture sets in the
published layouts (written by test_datasets' writers) with a toy hand model."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from test_datasets import write_mpii_nzsl, write_stb
from train_fixtures import ListDataset, make_samples

from wildhands.app import plots
from wildhands.config import load_profile
from wildhands.data.datasets import JointHandDataset, load_mpii_nzsl, load_stb
from wildhands.eval import paper_reference, real_sets
from wildhands.eval.metrics import EvalSettings
from wildhands.hand import keypoints as kp
from wildhands.hand.hand_model import HandModel
from wildhands.net.train import finetune, pretrain

matplotlib.use("Agg")

TINY = {"model.input_size": 32, "pretrain.steps": 2, "pretrain.batch_size": 4, "pretrain.checkpoint_every": 2,
        "pretrain.log_every": 1, "finetune.steps": 2, "finetune.batch_size": 4, "finetune.checkpoint_every": 2,
        "finetune.log_every": 1, "pretrain.workers": 0, "finetune.workers": 0,
        "fit2d.num_inits": 2, "fit2d.iterations": 5}


@pytest.fixture
def setup(toy_mano_path, tmp_path, monkeypatch):
    monkeypatch.setenv("WILDHANDS_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setattr("wildhands.net.train.OUTPUTS_DIR", tmp_path / "outputs")
    write_stb(tmp_path / "stb", frames=1, draw=True)
    write_mpii_nzsl(tmp_path / "hand_labels")
    return HandModel(toy_mano_path), load_profile("smoke", TINY), tmp_path


@pytest.mark.slow
def test_finetune_on_the_real_mixture_then_evaluate_the_paper_sets(setup):
    hand, config, tmp = setup
    mixture = JointHandDataset.from_config(config, load_stb(tmp / "stb", "train"),
                                           load_mpii_nzsl(tmp / "hand_labels", "train"), mask_dir=tmp / "masks")
    assert {s["has_3d"] for s in (mixture[0], mixture[len(mixture) - 1])} == {0.0, 1.0}
    synthetic = ListDataset(make_samples(hand, 4, seed=0))
    common = dict(hand_model=hand, progress=False, variant="2d")
    init = pretrain(config, datasets=(synthetic, synthetic), run_dir=tmp / "pre", **common).checkpoint
    tuned = finetune(config, init_checkpoint=init, datasets=(mixture, mixture), run_dir=tmp / "fine", **common)

    paths = {"stb": str(tmp / "stb"), "mpii_nzsl": str(tmp / "hand_labels"), "panoptic": "", "egodexter": ""}
    result = real_sets.evaluate_sets(config, paths, {"2d": tuned.checkpoint}, hand)
    assert set(result) == {"stereo", "mpii+nzsl"}                       # training-only and empty sets skipped
    for set_name, per_method in result.items():
        assert set(per_method) == {"Ours 2D", "2D fit"}
        unit = paper_reference.paper_set(set_name)["unit"]
        for summary in per_method.values():
            assert np.isfinite(summary[f"mean_{unit}"]) and len(summary["pck"]) == len(summary[f"thresholds_{unit}"])
        rows = paper_reference.comparison_rows(set_name, per_method)
        assert {r["label"] for r in rows if r["ours_mean"] is not None} == {"Ours 2D", "2D fit"}
        plots.pck_comparison_figure(set_name, per_method)
    stereo = result["stereo"]["Ours 2D"]
    assert stereo["alignment"] == "root" and stereo["num_samples"] == 2          # B1Counting and B1Random
    assert stereo["per_keypoint"]["wrist"]["mean_mm"] == 0.0                     # the palm centre, aligned
    assert result["mpii+nzsl"]["2D fit"]["num_samples"] == 1


def test_protocol_scores_are_zero_for_the_labels_and_see_their_offsets():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(3, kp.NUM_KEYPOINTS, 3)) * 0.05 + [0, 0, 0.5]
    tips_only = np.full_like(points, np.nan)
    tips_only[:, list(kp.FINGERTIPS)] = points[:, list(kp.FINGERTIPS)]
    scored = np.zeros((3, kp.NUM_KEYPOINTS), bool)
    scored[:, list(kp.FINGERTIPS)] = True
    labels = {"keypoints_3d": tips_only, "scored": scored, "visible": scored,
              "keypoints_2d": points[..., :2] * 1000}
    protocol = real_sets.PROTOCOLS["egodexter"]
    settings = EvalSettings.from_config(load_profile("quick"))
    shifted = real_sets.Predictions(points - points[:, :1] + [0.1, 0, 0], points[..., :2] * 1000)  # any translation
    assert real_sets.score(shifted, labels, protocol, settings)["mean_mm"] == pytest.approx(0.0, abs=1e-9)
    bent = shifted.keypoints_3d.copy()
    bent[:, kp.FINGERTIPS[0]] += [0.01, 0, 0]    # thumb tip 10 mm off moves the centroid 2 mm
    summary = real_sets.score(real_sets.Predictions(bent, shifted.keypoints_2d), labels, protocol, settings)
    assert summary["per_keypoint"]["thumb_tip"]["mean_mm"] == pytest.approx(8.0)
    assert summary["per_keypoint"]["wrist"]["mean_mm"] is None

    two_d = real_sets.score(real_sets.Predictions(bent, labels["keypoints_2d"] + [3, 4]), labels,
                            real_sets.PROTOCOLS["mpii_nzsl"], settings)
    assert two_d["mean_px"] == pytest.approx(5.0) and two_d["num_keypoints_scored"] == 15


def test_palm_root_sets_drop_keypoint_0_from_the_2d_inputs():
    visible = np.ones((2, kp.NUM_KEYPOINTS))
    assert real_sets.input_confidence(visible, palm_root=True)[:, 0].sum() == 0
    assert real_sets.input_confidence(visible, palm_root=False).sum() == visible.sum()
    assert visible.sum() == 42                                                 # the labels stay as they are


def test_paper_training_mixture_reads_the_configured_training_sets(setup):
    from wildhands.data.datasets import paper_training_mixture

    _, config, tmp = setup
    assert paper_training_mixture(config) is None                               # the profile names no folder
    config = dict(config, data={**config["data"], "stb": str(tmp / "stb"), "mpii_nzsl": str(tmp / "hand_labels"),
                                "egodexter": str(tmp / "nowhere")})            # evaluation-only: not read
    mixture = paper_training_mixture(config, mask_dir=tmp / "masks")
    assert mixture.counts() == {"stb": {"samples": 10, "with_3d": 10, "with_mask": 0},
                                "mpii_nzsl": {"samples": 2, "with_3d": 0, "with_mask": 2}}


def test_finetuning_defaults_to_the_real_mixture_when_the_profile_names_it(setup, monkeypatch):
    from wildhands.data import synthetic
    from wildhands.net import train

    hand, config, tmp = setup
    synthetic.generate_synthetic_set(load_profile("smoke", {"synthetic.num_val": 2, "synthetic.workers": 1}),
                                     root=tmp / "synthetic", split="val", hand_model=hand)
    monkeypatch.setattr(train, "synthetic_root", lambda cfg: tmp / "synthetic")
    real = dict(config, data={**config["data"], "stb": str(tmp / "stb")})
    train_set, val_set = train.default_datasets(real, "finetune", hand)
    assert isinstance(train_set, JointHandDataset) and train_set.counts()["stb"]["samples"] == 10
    assert len(val_set) == 2                                     # validation stays the synthetic val split
