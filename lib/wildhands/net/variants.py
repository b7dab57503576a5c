"""A profile for one input variant (rgb, 2d, rgb+2d, 2d+depth): its ``[variants.<name>]`` entry applied.

Training and inference both need a variant's settings as the profile gives them (the 2D
variant trains on sampled hands, the RGB variant refines without the prior, ...), so the
rule lives here, below both.
"""
from __future__ import annotations

from wildhands.config import apply_overrides, setting
from wildhands.net.encoder import check_variant

TRAIN_STAGES = ("pretrain", "finetune")


def variant_config(config: dict, variant: str | None = None) -> dict:
    """The profile for one input variant: its ``[variants.<name>]`` entry applied, ``model.variant`` set.

    The entry holds dotted overrides and ``budget``, the fraction of the ``[pretrain]`` and
    ``[finetune]`` steps this variant trains for (at least one step).
    """
    variant = check_variant(variant or setting(config, "model", "variant"))
    overrides = dict(setting(config, "variants", variant))
    budget = float(setting(config, f"variants.{variant}", "budget"))
    del overrides["budget"]
    if not budget > 0:
        raise ValueError(f"variants.{variant}.budget: expected a fraction > 0 of the steps, got {budget}")
    overrides["model.variant"] = variant
    config = apply_overrides(config, overrides)
    for stage in TRAIN_STAGES:
        config[stage]["steps"] = max(1, round(int(setting(config, stage, "steps")) * budget))
    config["variants"] = {variant: {"budget": 1.0}}  # applied: a second call changes nothing
    return config
