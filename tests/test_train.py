import os
import pickle

import pytest
import torch
import torch.multiprocessing as mp
from conftest import toy_mano_arrays
from train_fixtures import ListDataset, make_samples, moved_from_2d

from wildhands.config import apply_overrides, load_profile
from wildhands.hand.hand_model import HandModel
from wildhands.net.checkpoints import CheckpointError, export_checkpoint, load_model, read_checkpoint
from wildhands.net.train import _run_difference, finetune, main, pretrain, read_log, variant_config

TINY = {"model.input_size": 32, "pretrain.steps": 4, "pretrain.batch_size": 4, "pretrain.checkpoint_every": 2,
        "pretrain.log_every": 1, "finetune.steps": 4, "finetune.batch_size": 4, "finetune.checkpoint_every": 2,
        "finetune.log_every": 1, "pretrain.workers": 0, "finetune.workers": 0,
        "variants.rgb+2d": {"budget": 1.0}}  # the variant alone, not started from the 2D network


class Killed(Exception):
    pass


@pytest.fixture
def setup(toy_mano_path, tmp_path, monkeypatch):
    monkeypatch.setenv("WILDHANDS_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setattr("wildhands.net.train.OUTPUTS_DIR", tmp_path / "outputs")
    hand = HandModel(toy_mano_path)
    data = (ListDataset(make_samples(hand, 12, seed=0)), ListDataset(make_samples(hand, 4, seed=1)))
    return hand, data, load_profile("smoke", TINY), tmp_path


def _weights(path):
    return read_checkpoint(path)["encoder"]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_killed_and_resumed_run_ends_with_the_same_weights(setup, stage):
    hand, data, config, tmp = setup
    common = dict(datasets=data, hand_model=hand, progress=False, variant="rgb+2d")
    init = pretrain(config, run_dir=tmp / "init", **common).checkpoint if stage == "finetune" else None
    run = (lambda **kw: finetune(config, init_checkpoint=init, **common, **kw)) if stage == "finetune" else \
        (lambda **kw: pretrain(config, **common, **kw))
    whole = run(run_dir=tmp / "whole")

    def kill(step, record):
        if step == 3:  # after the checkpoint of step 2
            raise Killed

    with pytest.raises(Killed):
        run(run_dir=tmp / "split", callback=kill)
    assert read_checkpoint(tmp / "split" / "last.pt")["step"] == 2
    resumed = run(run_dir=tmp / "split", resume=True)
    a, b = _weights(whole.checkpoint), _weights(resumed.checkpoint)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = lambda log: [(r["step"], r["loss"]) for r in read_log(log)]  # noqa: E731
    assert losses(resumed.log_path) == losses(whole.log_path)


def test_checkpoint_records_identity_and_refuses_another_hand_model(setup, tmp_path):
    hand, data, config, tmp = setup
    result = pretrain(config, datasets=data, hand_model=hand, progress=False, run_dir=tmp / "run")
    payload = read_checkpoint(result.checkpoint)
    assert payload["hand_model"]["hash"] == hand.hash and payload["code_version"]["wildhands"]
    assert not any("shapedirs" in k or "v_template" in k for k in payload["encoder"])
    assert {"mpjpe_3d_mm", "error_2d_px"} <= set(payload["metrics"])
    model, saved_config = load_model(result.checkpoint, hand_model=hand)
    assert saved_config["model"]["variant"] == "2d" and not model.training
    other_path = tmp_path / "OTHER.pkl"
    with open(other_path, "wb") as f:
        pickle.dump(toy_mano_arrays(seed=1), f, protocol=2)
    with pytest.raises(CheckpointError) as err:
        load_model(result.checkpoint, hand_model=HandModel(other_path))
    assert "./run_all.sh" in str(err.value) and "--checkpoint" in str(err.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp / "missing.pt", hand_model=hand)
    shipped = export_checkpoint(result.checkpoint, tmp / "small.pt")
    assert shipped.stat().st_size < 0.6 * result.checkpoint.stat().st_size
    small_model, _ = load_model(shipped, hand_model=hand)
    x = torch.rand(2, 21, 32, 32)
    assert torch.allclose(small_model(x).keypoints_3d, model(x).keypoints_3d, atol=2e-3)
    log = read_log(result.log_path)
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert {"rotation", "trans", "scale", "betas", "pose", "loss", "mpjpe_3d_mm"} <= set(log[-1])


def test_finetune_logs_every_weighted_term(setup):
    hand, data, config, tmp = setup
    init = pretrain(config, datasets=data, hand_model=hand, progress=False, run_dir=tmp / "p").checkpoint
    result = finetune(config, init_checkpoint=init, datasets=data, hand_model=hand, progress=False,
                      run_dir=tmp / "f")
    record = result.history[-1]
    assert {"l2d", "l3d", "mask", "reg", "raw_l2d", "raw_l3d", "raw_mask", "raw_reg", "loss"} <= set(record)
    assert record["loss"] == pytest.approx(sum(record[k] for k in ("l2d", "l3d", "mask", "reg")), rel=1e-5)


def test_pretraining_with_the_keypoint_term_logs_and_learns_it(setup):
    hand, data, _, tmp = setup
    config = load_profile("smoke", {**TINY, "pretrain.w_keypoints": 50.0})
    result = pretrain(config, datasets=data, hand_model=hand, progress=False, run_dir=tmp / "p")
    first, last = result.history[0], result.history[-1]
    assert {"keypoints", "raw_keypoints"} <= set(last)
    assert last["loss"] == pytest.approx(sum(last[k] for k in ("rotation", "trans", "scale", "betas", "pose",
                                                               "keypoints")), rel=1e-5)
    assert last["raw_keypoints"] < first["raw_keypoints"]


def _ddp_worker(rank, world, port, toy_path, out_dir):
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "OMP_NUM_THREADS": "1",
                       "WILDHANDS_OUTPUTS": str(out_dir)})
    import wildhands.net.train

    wildhands.net.train.OUTPUTS_DIR = out_dir  # imported before the environment was set
    torch.set_num_threads(1)
    hand = HandModel(toy_path)
    data = (ListDataset(make_samples(hand, 8, seed=0)), ListDataset(make_samples(hand, 2, seed=1)))
    config = load_profile("smoke", {**TINY, "pretrain.steps": 2, "pretrain.checkpoint_every": 0})
    result = pretrain(config, datasets=data, hand_model=hand, progress=False, run_dir=out_dir / "ddp")
    torch.save(result.model.encoder.state_dict(), out_dir / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_distributed_data_parallel_on_two_cpu_processes(toy_mano_path, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(toy_mano_path), tmp_path), nprocs=2, join=True)
    final = _weights(tmp_path / "ddp" / "final.pt")
    other = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(final[k], other[k]) for k in final if "num_batches" not in k and "running" not in k)


def test_command_line_rejects_bad_overrides():
    with pytest.raises(SystemExit):
        main(["--config", "smoke", "--set", "no-equals-sign"])
    with pytest.raises(KeyError, match="nosuchsection"):
        main(["--config", "smoke", "--set", "nosuchsection.steps=3", "--stage", "pretrain"])
    with pytest.raises(KeyError, match="'seed' there; known: .*steps"):    # a misplaced setting is not ignored
        main(["--config", "smoke", "--set", "pretrain.seed=1", "--stage", "pretrain"])
    with pytest.raises(KeyError, match="known: .*lr"):    # the settings a stage takes from [optim] are listed too
        main(["--config", "smoke", "--set", "pretrain.lrr=1", "--stage", "pretrain"])


def test_variant_config_applies_overrides_and_budget_once():
    config = load_profile("quick", {"variants.rgb": {"model.input_size": 48, "budget": 0.5}})
    rgb = variant_config(config, "rgb")
    assert rgb["model"]["variant"] == "rgb" and rgb["model"]["input_size"] == 48
    assert rgb["pretrain"]["steps"] == round(config["pretrain"]["steps"] * 0.5)
    assert variant_config(rgb)["pretrain"]["steps"] == rgb["pretrain"]["steps"]
    with pytest.raises(ValueError, match="variant"):
        variant_config(config, "depth")


@pytest.mark.slow
def test_resume_starts_over_when_the_run_changed(setup, capsys):
    hand, data, config, tmp = setup
    common = dict(datasets=data, hand_model=hand, progress=False, run_dir=tmp / "run")
    pretrain(config, **common)
    changed = load_profile("smoke", {**TINY, "pretrain.w_pose": 1.0})
    result = pretrain(changed, resume=True, **common)
    assert "starting this run over" in capsys.readouterr().out
    assert [r["step"] for r in result.history] == [1, 2, 3, 4]
    again = pretrain(changed, resume=True, **common)  # a finished run: nothing left to do
    assert [r["step"] for r in again.history] == [1, 2, 3, 4]


@pytest.mark.slow
def test_finetune_started_over_still_starts_from_the_pretrained_weights(setup, capsys):
    hand, data, config, tmp = setup
    common = dict(datasets=data, hand_model=hand, progress=False)
    payload = read_checkpoint(pretrain(config, run_dir=tmp / "pre", **common).checkpoint)
    # Pretrained weights far from the seeded initialisation, so that starting from either shows.
    payload["encoder"] = {k: v + 0.02 if v.is_floating_point() else v for k, v in payload["encoder"].items()}
    torch.save(payload, tmp / "pretrained.pt")
    finetune(config, init_checkpoint=tmp / "pretrained.pt", run_dir=tmp / "ft", **common)
    changed = load_profile("smoke", {**TINY, "finetune.steps": 1})
    again = finetune(changed, init_checkpoint=tmp / "pretrained.pt", run_dir=tmp / "ft", resume=True, **common)
    assert "starting this run over" in capsys.readouterr().out
    # One Adam step in the warm-up barely moves the weights: they are the pretrained ones.
    start = payload["encoder"]                                   # weights, not batch-norm statistics
    moved = max((p.detach() - start[k].float()).abs().max().item() for k, p in again.model.encoder.named_parameters())
    assert moved < 1e-3
    # Settings that only steer the 2D fit at inference do not set a run aside.
    finished = read_checkpoint(again.checkpoint)
    assert _run_difference(finished, hand.hash, apply_overrides(finished["config"], {"refine.label_sigma_px": 3.0}),
                           "finetune") == ""


def test_weights_move_to_another_input_variant(toy_mano_path, tmp_path):
    from wildhands.net.checkpoints import load_encoder_weights_from_variant
    from wildhands.net.model import build_model

    hand = HandModel(toy_mano_path)
    config = load_profile("smoke", {"model.input_size": 32})
    source, target, path = moved_from_2d(hand, config, tmp_path, "rgb+2d")
    moved, kept = target.encoder.state_dict(), source.encoder.state_dict()
    conv1 = moved["backbone.conv1.weight"]
    assert torch.equal(conv1[:, 3:], kept["backbone.conv1.weight"])     # heat-map filters behind the RGB ones
    assert conv1[:, :3].abs().max() < 0.01                               # new image filters start small
    assert all(torch.equal(v, kept[k]) for k, v in moved.items() if k != "backbone.conv1.weight")
    # So the new network first answers as the old one did, whatever the image.
    maps = torch.rand(2, 21, 32, 32)
    with torch.no_grad():
        before = source(maps).keypoints_3d
        after = target(torch.cat([torch.randn(2, 3, 32, 32), maps], 1)).keypoints_3d
    assert (after - before).norm(dim=-1).max() < 1e-3                   # metres
    back = build_model(config, hand, variant="rgb")
    with pytest.raises(CheckpointError, match="resnet"):
        load_encoder_weights_from_variant(build_model({**config, "model": {**config["model"], "backbone": "resnet18"}},
                                                      hand, variant="rgb"), read_checkpoint(path), path)
    load_encoder_weights_from_variant(back, read_checkpoint(path), path)  # no channel in common: conv1 all new
    assert back.encoder.state_dict()["backbone.conv1.weight"].abs().max() < 0.01


def test_pretraining_can_start_from_the_profiles_network_of_another_variant(setup):
    hand, data, config, tmp = setup
    common = dict(datasets=data, hand_model=hand, progress=False)
    start_from_2d = apply_overrides(config, {"pretrain.init_variant": "2d", "pretrain.steps": 1, "pretrain.lr": 1e-12})
    with pytest.raises(FileNotFoundError, match="init_variant"):
        pretrain(start_from_2d, variant="rgb+2d", **common)
    with pytest.raises(ValueError, match="init_variant"):
        pretrain(start_from_2d, variant="2d", **common)
    two_d = read_checkpoint(pretrain(config, variant="2d", **common).checkpoint)["encoder"]
    result = pretrain(start_from_2d, variant="rgb+2d", **common)
    for name, p in result.model.encoder.named_parameters():
        expected = two_d[name]
        value = p.detach()[:, 3:] if name == "backbone.conv1.weight" else p.detach()
        assert (value - expected.float()).abs().max() < 1e-6, name


def test_training_settings_are_read_once_and_a_missing_key_is_named():
    from wildhands.config import MissingSetting
    from wildhands.net.samples import AugmentSettings, InputSettings
    from wildhands.net.train import StageSettings, TrainSettings

    quick = load_profile("quick")
    pretraining, finetuning = StageSettings.from_config(quick, "pretrain"), StageSettings.from_config(quick, "finetune")
    assert pretraining.lr == quick["optim"]["lr"] and finetuning.lr == quick["finetune"]["lr"]   # [optim]'s unless set
    assert pretraining.warmup_steps == quick["optim"]["warmup_steps"] and finetuning.warmup_steps == 20
    assert pretraining.withheld_3d_fraction is None and finetuning.init_variant is None
    two_d = TrainSettings.from_config(variant_config(quick, "2d"), "pretrain")
    assert two_d.stage.data == "sampled" and two_d.inputs == InputSettings(64, 320, 3.0)
    for table, key, read in (("augment", "rotation_deg", AugmentSettings.from_config),
                             ("pretrain", "data", lambda c: StageSettings.from_config(c, "pretrain")),
                             ("optim", "amp_cpu", lambda c: TrainSettings.from_config(c, "finetune"))):
        broken = load_profile("quick")
        del broken[table][key]
        with pytest.raises(MissingSetting, match=rf"\[{table}\] {key}: missing from profile 'quick'"):
            read(broken)
    with pytest.raises(ValueError, match="pretrain.data"):
        StageSettings.from_config(load_profile("quick", {"pretrain.data": "drawn"}), "pretrain")
