"""Profiles (smoke, quick, paper) as plain data: TOML files in params/profiles/.

A profile may name another in ``inherit``; its tables are merged over the parent's,
so every setting is written once. Overrides come as dotted keys
(``{"pretrain.steps": 50}``), as papermill parameters or ``--set`` flags do.

Code reads a profile at its boundary: ``settings_from_table`` turns one table into a typed
settings object (a dataclass whose fields are the table's keys), and a key the profile lacks
is a ``MissingSetting`` error naming the table and key, never a silent default.
"""
from __future__ import annotations

import copy
import dataclasses
import tomllib
from pathlib import Path

from wildhands.paths import PROFILES_DIR

PROFILES = ("smoke", "quick", "paper", "paper-dryrun")
# Tables that steer only inference (test-time averaging, the 2D fit, the camera-space fit), never the
# trained weights.
INFERENCE_TABLES = ("inference", "fit2d", "refine", "camera_fit")
# Settings a table may take without listing them, each falling back to another table's: [refine] and
# [refine.with_3d] override these of the table they sit over ([fit2d]'s, then [refine]'s); a training
# stage, its learning rate and warm-up over [optim]'s. Any other override must name a listed setting.
REFINE_MODEL_KEYS = ("pose_space", "w_theta", "alpha_beta", "pose_std_floor")
STAGE_OPTIM_KEYS = ("lr", "warmup_steps")
UNLISTED_SETTINGS = {"refine": REFINE_MODEL_KEYS, "refine.with_3d": REFINE_MODEL_KEYS,
                     "pretrain": STAGE_OPTIM_KEYS, "finetune": STAGE_OPTIM_KEYS}


class MissingSetting(KeyError):
    """A setting the code needs is absent from the profile; the message names the table and key."""

    def __str__(self) -> str:
        return str(self.args[0])


def table(config: dict, name: str) -> dict:
    """The profile's table ``name`` ("refine.with_3d" for a nested one); a missing one is an error naming it."""
    node = config
    for part in name.split("."):
        if not isinstance(node.get(part), dict):
            raise MissingSetting(f"[{name}]: no such table in profile {config.get('profile', '(unnamed)')!r}")
        node = node[part]
    return node


def setting(config: dict, table_name: str, key: str):
    """One value of a profile's table (``table_name`` "": a top-level key such as ``seed``); a missing
    key is an error naming ``[table] key``."""
    values = table(config, table_name) if table_name else config
    if key not in values:
        where = f"[{table_name}] {key}" if table_name else key
        raise MissingSetting(f"{where}: missing from profile {config.get('profile', '(unnamed)')!r}")
    return values[key]


# Field annotations (strings under postponed evaluation) whose values are converted on reading.
_CONVERSIONS = {"int": int, "float": float, "str": str, "bool": bool}


def settings_from_table(cls, config: dict, table_name: str, **given):
    """An instance of the dataclass ``cls`` from the profile's ``[table_name]``: each field not in
    ``given`` is the key of the same name, converted to the field's type when that is int, float,
    str or bool. A missing key is a ``MissingSetting`` naming it; other keys of the table are ignored."""
    values = dict(given)
    for field in dataclasses.fields(cls):
        if field.name not in values and field.init:
            value = setting(config, table_name, field.name)
            kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
            convert = _CONVERSIONS.get(kind)
            values[field.name] = convert(value) if convert else value
    return cls(**values)


class TableSettings:
    """Base of a dataclass read from one profile table, named by the subclass's ``TABLE``."""
    TABLE = ""

    @classmethod
    def from_config(cls, config: dict):
        """From the profile's ``[TABLE]`` (``settings_from_table``)."""
        return settings_from_table(cls, config, cls.TABLE)


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _parse_scalar(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(config: dict, overrides: dict | None) -> dict:
    """Return ``config`` with dotted-key ``overrides`` set; unknown sections and settings are an error (a
    misspelt setting would otherwise change nothing, silently)."""
    config = copy.deepcopy(config)
    for dotted, value in (overrides or {}).items():
        *parents, leaf = dotted.split(".")
        node = config
        for part in parents:
            if part not in node or not isinstance(node[part], dict):
                raise KeyError(f"override {dotted!r}: no section {part!r} in the profile")
            node = node[part]
        fallbacks = set(UNLISTED_SETTINGS.get(".".join(parents), ()))
        if leaf not in node and leaf not in fallbacks:
            known = ", ".join(sorted({k for k in node if not isinstance(node[k], dict)} | fallbacks))
            raise KeyError(f"override {dotted!r}: no setting {leaf!r} there; known: {known}")
        node[leaf] = _parse_scalar(value) if isinstance(value, str) else value
    return config


def parse_set_arguments(items) -> dict:
    """Dotted-key overrides from ``--set KEY=VALUE`` arguments (values parsed as TOML scalars when they are)."""
    overrides = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. pretrain.steps=100")
        overrides[key.strip()] = value.strip()
    return overrides


def load_profile(name_or_path: str = "quick", overrides: dict | None = None) -> dict:
    """Load a profile by name (smoke, quick, paper) or from a TOML path, with overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise FileNotFoundError(
            f"profile {name_or_path!r}: no file {path} (known profiles: {', '.join(PROFILES)})")
    with open(path, "rb") as f:
        data = tomllib.load(f)
    parent = data.pop("inherit", None)
    name = data.pop("profile", path.stem)
    if parent:
        data = _merge(load_profile(parent), data)
    data["profile"] = name
    return apply_overrides(data, overrides)
