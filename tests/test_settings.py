"""Every profile gives each table's adapter the settings it reads: code reads them strictly, a missing one
is an error naming it (``config.MissingSetting``), never a silent default."""
import copy
from types import SimpleNamespace

import pytest

from wildhands.config import PROFILES, MissingSetting, load_profile
from wildhands.data.augment import AugmentSettings, DetectorNoise
from wildhands.data.detector import detector_from_config
from wildhands.data.synthetic import SyntheticSettings, synthetic_root
from wildhands.eval.metrics import EvalSettings
from wildhands.fit.perspective import PerspectiveSettings
from wildhands.fit.temporal import TemporalSettings
from wildhands.hand.hand_model import HandModelSettings
from wildhands.net.checkpoints import ADDED_SETTINGS, recorded_config
from wildhands.net.encoder import VARIANTS
from wildhands.net.inference import InferenceSettings
from wildhands.net.losses import LossSettings, ParameterWeights
from wildhands.net.model import ModelSettings
from wildhands.net.train import TrainSettings, run_name
from wildhands.net.variants import TRAIN_STAGES, variant_config

ADAPTERS = (AugmentSettings.from_config, DetectorNoise.from_config, EvalSettings.from_config,
            TemporalSettings.from_config, HandModelSettings.from_config, InferenceSettings.from_config,
            LossSettings.from_config, ParameterWeights.from_config, ModelSettings.from_config,
            SyntheticSettings.from_config, PerspectiveSettings.from_config)


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_and_variant_gives_every_adapter_its_settings(name, monkeypatch):
    import mediapipe as mp

    monkeypatch.setattr(mp.solutions.hands, "Hands", lambda **kwargs: SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(mp.solutions.pose, "Pose", lambda **kwargs: SimpleNamespace(close=lambda: None))
    base = load_profile(name)
    for variant in VARIANTS:
        config = variant_config(base, variant)
        for adapter in ADAPTERS:
            adapter(config)
        for stage in TRAIN_STAGES:
            TrainSettings.from_config(config, stage)
            run_name(config, stage)
        detector_from_config(config)
        synthetic_root(config)


def test_a_missing_setting_is_named():
    config = load_profile("smoke")
    del config["loss"]["wmask"], config["video"]["window"], config["camera_fit"]["sigma_pose"]
    with pytest.raises(MissingSetting, match=r"\[loss\] wmask: missing from profile 'smoke'"):
        LossSettings.from_config(config)
    with pytest.raises(MissingSetting, match=r"\[video\] window: missing"):
        TemporalSettings.from_config(config)
    with pytest.raises(MissingSetting, match=r"\[camera_fit\] sigma_pose: missing"):
        PerspectiveSettings.from_config(config)
    del config["variants"]["rgb"]["budget"]
    with pytest.raises(MissingSetting, match=r"\[variants.rgb\] budget: missing"):
        variant_config(config, "rgb")


def test_older_checkpoints_get_the_settings_added_since_at_the_values_they_ran_with():
    quick = load_profile("quick")
    old = copy.deepcopy(quick)
    for table, keys in ADDED_SETTINGS.items():
        for key in keys:
            assert key in quick[table]          # today's profiles set them: only recorded ones may lack them
            del old[table][key]
    config = recorded_config({"config": old})
    assert config["detector"]["body"] is False and config["detector"]["sigma_rule"] == ""
    assert config["synthetic"]["real_pose_fraction"] == 0.0 and config["eval"]["real_photo_limit"] == 0
    assert recorded_config({"config": quick}) == quick       # what a checkpoint records is kept
    EvalSettings.from_config(config)
