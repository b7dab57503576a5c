"""The README's table of small hands found in full scenes, written from params/detector_composites.json.

    .venv/bin/python docs/make_detector_results.py            # rewrite the table between the README's markers
    .venv/bin/python docs/make_detector_results.py --check    # exit 1 if the README's table disagrees

``benchmarks/bench_detector.py --composites --write-composites params/detector_composites.json``
measures the detector on labelled close-ups pasted small into scikit-image's photos (issue 17),
now and as it was before its last change (the JSON's ``before`` entry; its ``label`` titles the
column). Nothing here is typed by hand: after a new measurement, run this script;
tests/test_detector.py fails until the README agrees with the file.
"""
from __future__ import annotations

import json

from make_architecture import ROOT, replace_between, update_document

README = ROOT / "README.md"
METRICS = ROOT / "params" / "detector_composites.json"
BEGIN, END = "<!-- detector:begin (docs/make_detector_results.py) -->", "<!-- detector:end -->"


def _cell(row: dict) -> str:
    error = "-" if row["mean_error_px"] is None else f"{row['mean_error_px']:.1f}"
    return f"{row['found']}/{row['hands']} ({100 * row['rate']:.0f} %), {error}"


# issue 17's targets: the share of hands found, alone and at a person's wrist pooled, by size
TARGETS = (("16-32 px", ("16-24 px", "24-32 px"), 0.5), ("32 px and more", ("32-48 px", "48-64 px"), 0.8))


def _pooled(bins: dict, sizes: tuple) -> dict:
    """One row of ``bins`` pooling every bin whose name ends with one of ``sizes``."""
    rows = [row for name, row in bins.items() if name.endswith(sizes)]
    found, hands = sum(r["found"] for r in rows), sum(r["hands"] for r in rows)
    errors = [(r["mean_error_px"], r["found"]) for r in rows if r["mean_error_px"] is not None]
    error = round(sum(e * n for e, n in errors) / found, 1) if found else None
    return {"found": found, "hands": hands, "rate": found / hands if hands else 0.0, "mean_error_px": error}


def detector_table(metrics: dict) -> str:
    """The caption and markdown table of the composites' figures, now against before."""
    before = metrics.get("before")
    if before is None:
        raise KeyError(f"{METRICS.name}: no 'before' entry; re-measure with benchmarks/bench_detector.py --composites")
    speed = metrics["seconds_per_photo"]
    lines = [f"Hands found, and their mean 2D error (px at 320) over the found ones, by hand size l (scene px) in "
             f"1024 x 768 scenes: {metrics['labelled_hands']} labelled close-ups pasted at each size, alone or at a "
             f"person's wrist (`{METRICS.relative_to(ROOT)}`):", "",
             f"| hands | found now, error | {before.get('label', 'before')} |", "|---|---|---|"]
    for name, row in metrics["bins"].items():
        lines.append(f"| {name} | {_cell(row)} | {_cell(before['bins'][name])} |")
    for name, sizes, target in TARGETS:
        lines.append(f"| all {name} (target {100 * target:.0f} %) | {_cell(_pooled(metrics['bins'], sizes))} | "
                     f"{_cell(_pooled(before['bins'], sizes))} |")
    rendered = metrics.get("rendered")
    if rendered:   # the tuning set: the project's own rendered hands (the labelled photos are calibration data)
        for name, sizes, _ in TARGETS:
            lines.append(f"| tuning set ({rendered['close_ups']} rendered hands), all {name} | "
                         f"{_cell(_pooled(rendered['bins'], sizes))} | "
                         f"{_cell(_pooled(rendered['before_bins'], sizes))} |")
    lines.append(f"| false hands per hand-free photo ({metrics['hand_free_photos']}) | "
                 f"{metrics['false_hands_per_photo']:.2f} | {before['false_hands_per_photo']:.2f} |")
    lines.append(f"| other hands reported in the scenes | {sum(r['other_hands'] for r in metrics['bins'].values())} | "
                 f"{sum(r['other_hands'] for r in before['bins'].values())} |")
    for kind in ("close-ups found", "hand-free"):
        lines.append(f"| seconds per photo, {kind} (2 shared cores) | {speed[kind]['body_on_s']:.2f} | "
                     f"{speed[kind]['before_s']:.2f} |")
    return "\n".join(lines)


def readme_with_table(readme: str, metrics: dict) -> str:
    """``readme`` with the generated table between its detector markers."""
    return replace_between(readme, BEGIN, END, detector_table(metrics), str(README))


def main(argv=None) -> int:
    current = readme_with_table(README.read_text(), json.loads(METRICS.read_text()))
    return update_document(argv, __doc__.splitlines()[0], README, current, str(METRICS),
                           "docs/make_detector_results.py")


if __name__ == "__main__":
    raise SystemExit(main())
