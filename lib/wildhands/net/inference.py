"""The settings of inference, built once: test-time averaging, the 2D fit and the refinement.

``InferenceSettings`` holds a profile's ``[inference]`` table and composes the 2D fit's
``FitSettings`` (``[fit2d]``) and the refinement's ``RefineSettings`` (``[refine]``,
``[refine.with_3d]``). Those tables steer inference only, never the trained weights
(``config.INFERENCE_TABLES``), so a checkpoint takes them from its profile as the profile is
now (``InferenceSettings.for_checkpoint``): improving them needs no retraining. ``predict``, the
evaluation protocol and the notebooks read them here, and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass

from wildhands.config import INFERENCE_TABLES, apply_overrides, load_profile, setting
from wildhands.fit.fit2d import FitSettings
from wildhands.fit.refine import RefineSettings
from wildhands.net.model import QUARTER_TURNS
from wildhands.net.variants import variant_config


def inference_quarter_turns(config: dict) -> int:
    """``[inference] quarter_turns``: the network's input also seen turned by 1, 2 or 4 evenly spaced
    quarter turns, the predictions turned back and averaged (``model.turned_average``)."""
    turns = int(setting(config, "inference", "quarter_turns"))
    if turns not in QUARTER_TURNS:
        raise ValueError(f"[inference] quarter_turns: expected one of {QUARTER_TURNS}, got {turns!r}")
    return turns


@dataclass(frozen=True)
class InferenceSettings:
    """How a trained network is used: ``quarter_turns`` (``[inference]``), the 2D fit from scratch
    (``fit``: ``[fit2d]``) and the refinement of a prediction (``refine``: ``[refine]`` over ``[fit2d]``)."""
    quarter_turns: int
    fit: FitSettings
    refine: RefineSettings

    @classmethod
    def from_config(cls, config: dict) -> "InferenceSettings":
        """From a profile (for a trained variant: ``variant_config``'s, whose ``[variants]`` entry may
        change the refinement)."""
        return cls(inference_quarter_turns(config), FitSettings.from_config(config), RefineSettings.from_config(config))

    @classmethod
    def for_checkpoint(cls, trained_config: dict, overrides: dict | None = None) -> "InferenceSettings":
        """A checkpoint's settings: ``current_inference_config``'s, with dotted ``overrides``
        (e.g. ``{"refine.world_sigma_mm": 0.0}``)."""
        return cls.from_config(apply_overrides(current_inference_config(trained_config), overrides))


def current_inference_config(trained_config: dict) -> dict:
    """A checkpoint's configuration with ``config.INFERENCE_TABLES`` from its profile as it is now
    (that profile's variant: ``variant_config``); a checkpoint whose profile is not among
    params/profiles/ keeps its own."""
    try:
        current = variant_config(load_profile(str(setting(trained_config, "", "profile"))),
                                 setting(trained_config, "model", "variant"))
    except (FileNotFoundError, KeyError, ValueError):   # KeyError: config.MissingSetting
        return trained_config
    return {**trained_config, **{name: current[name] for name in INFERENCE_TABLES if name in current}}
