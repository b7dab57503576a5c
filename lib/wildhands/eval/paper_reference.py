"""The paper's published numbers: PCK curves of figures 4-8 and mean errors of tables 1-4.

``params/paper_reference.json`` holds them, transcribed from the curve data released with
the paper (Boukhayma, de Bem, Torr, CVPR 2019; licence CC BY-NC 4.0). Evaluation sets are
keyed ``stereo`` (STB), ``dexter+object``, ``egodexter`` and ``mpii+nzsl``; methods by the
paper's file names (``rgb``, ``2d``, ``rgb+2d``, ``2dfit``, ``zb`` for Zimmermann & Brox, ...),
with the figure legends' labels in ``labels``. Thresholds are millimetres for the 3D sets
and pixels of the 320 crop for MPII+NZSL.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from wildhands.eval.metrics import curve_auc
from wildhands.paths import PARAMS_DIR

PAPER_REFERENCE_PATH = PARAMS_DIR / "paper_reference.json"
SET_ALIASES = {"stb": "stereo", "dexter_object": "dexter+object", "do": "dexter+object",
               "mpii_nzsl": "mpii+nzsl", "mpii": "mpii+nzsl", "ego": "egodexter"}
TABLE_METHODS = ("rgb", "rgb+2d", "2d", "2dfit", "vae", "zb")  # column order of tables 1-4


@functools.lru_cache(maxsize=4)
def _load(path: str) -> dict:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"paper reference: no file {file}")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"paper reference {file}: not valid JSON ({err})") from err


def load_paper_reference(path=None) -> dict:
    """The whole reference (source, labels, figures, sets); read once and cached."""
    return _load(str(path or PAPER_REFERENCE_PATH))


def set_key(name: str) -> str:
    """Canonical key of an evaluation set (accepts ``stb``, ``dexter_object``, ...)."""
    key = SET_ALIASES.get(name.lower(), name.lower())
    known = load_paper_reference()["sets"]
    if key not in known:
        raise ValueError(f"evaluation set: expected one of {', '.join(known)} (or {', '.join(SET_ALIASES)}), "
                         f"got {name!r}")
    return key


def paper_set(name: str) -> dict:
    """One set's entry: name, kind (3d|2d), unit, table, figures, protocol, curves, mean_error."""
    return load_paper_reference()["sets"][set_key(name)]


def paper_curve(set_name: str, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, pck) of one published curve, thresholds in the set's unit."""
    entry = paper_set(set_name)
    curves = entry["curves"]
    if method not in curves:
        raise ValueError(f"method: {set_key(set_name)} has curves for {', '.join(curves)}, not {method!r}")
    curve = curves[method]
    return np.asarray(curve[f"thresholds_{entry['unit']}"], float), np.asarray(curve["pck"], float)


def label(method: str) -> str:
    """The figure legend's label of a method key (``"2dfit"`` -> ``"2D fit"``)."""
    return load_paper_reference()["labels"].get(method, method)


def method_key(name: str) -> str:
    """A method key from a key or a legend label (``"Ours RGB+2D"`` -> ``"rgb+2d"``)."""
    labels = load_paper_reference()["labels"]
    if name in labels:
        return name
    by_label = {v.lower(): k for k, v in labels.items()}
    if name.lower() in by_label:
        return by_label[name.lower()]
    raise ValueError(f"method: expected a key ({', '.join(labels)}) or a label of the paper's legends, got {name!r}")


def auc_range(set_name: str) -> tuple[float, float]:
    """Threshold range the paper's figures draw for a set: 20-50 mm or 0-30 px."""
    return (20.0, 50.0) if paper_set(set_name)["kind"] == "3d" else (0.0, 30.0)


def _ours_numbers(value, unit: str) -> tuple[float | None, float | None]:
    """(mean error, AUC) from a number or a ``metrics`` summary dict."""
    if value is None:
        return None, None
    if isinstance(value, dict):
        return value.get(f"mean_{unit}"), value.get("auc")
    return float(value), None


def comparison_rows(set_name: str, ours: dict | None = None) -> list[dict]:
    """Rows "paper vs ours" for the set's table (tables 1-4), in the paper's column order.

    ``ours`` maps a method key or label to our mean error (mm or px) or to a ``metrics``
    summary dict (then our AUC over the figure's range is reported too). Each row: method,
    label, unit, paper mean error, paper AUC (from the published curve, trapezoid rule over
    the figure's range), ours mean and AUC (None where not given), and ours - paper.
    """
    entry = paper_set(set_name)
    unit = entry["unit"]
    ours = {method_key(k): v for k, v in (ours or {}).items()}
    low, high = auc_range(set_name)
    methods = [m for m in TABLE_METHODS if m in entry["mean_error"] or m in ours]
    methods += [m for m in ours if m not in methods]
    rows = []
    for method in methods:
        paper_mean = entry["mean_error"].get(method)
        paper_auc = None
        if method in entry["curves"]:
            paper_auc = curve_auc(*paper_curve(set_name, method), low, high)
        ours_mean, ours_auc = _ours_numbers(ours.get(method), unit)
        rows.append({
            "method": method, "label": label(method), "unit": unit,
            "paper_mean": paper_mean, "paper_auc": paper_auc,
            "ours_mean": ours_mean, "ours_auc": ours_auc,
            "difference": None if paper_mean is None or ours_mean is None else ours_mean - paper_mean,
        })
    return rows


def format_rows(rows: list[dict], title: str | None = None) -> str:
    """A markdown table of ``comparison_rows`` (empty cells where a number is missing)."""
    def cell(value, digits=2):
        return "" if value is None else f"{value:.{digits}f}"
    unit = rows[0]["unit"] if rows else ""
    lines = [f"**{title}**", ""] if title else []
    lines += [f"| method | paper mean ({unit}) | ours mean ({unit}) | ours - paper | paper AUC | ours AUC |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {cell(r['paper_mean'])} | {cell(r['ours_mean'])} | {cell(r['difference'])} "
                     f"| {cell(r['paper_auc'], 3)} | {cell(r['ours_auc'], 3)} |")
    return "\n".join(lines)
