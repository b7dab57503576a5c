"""``python -m wildhands prepare-data``: check the configured real data sets and build the GrabCut mask cache.

Before hours of training, every set in the profile's ``[data]`` table is read as training and
evaluation will read it; its hands are counted per split against the counts the sets' publishers
(and the paper) give; then the GrabCut masks of the training mixture's 2D-only hands are computed
into the cache (``JointHandDataset.prepare_masks``, ``outputs/data/masks/``). Every problem found
is reported at once, each naming the set, the folder and the files expected. Running it again
resumes: masks already in the cache are kept (each is written atomically, so an interrupted run
leaves none half-written).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from wildhands.config import load_profile, parse_set_arguments, table
from wildhands.data.datasets import LOADERS, SPLITS, load_dataset, paper_training_mixture
from wildhands.data.datasets.common import DatasetNotFound

# Hands per split as published (docs/datasets.md; the paper's sec. 7 for its training sets).
# DEXTER+OBJECT and EGODEXTER publish frame counts, not counts of frames with an annotated
# fingertip (the frames the loaders keep), so they have none here.
PUBLISHED_COUNTS = {
    ("stb", "train"): 15000, ("stb", "test"): 3000,
    ("panoptic", "train"): 14817,
    ("mpii_nzsl", "train"): 1912, ("mpii_nzsl", "test"): 846,
    ("freihand", "train"): 4 * 32560, ("freihand", "test"): 3960,
    ("rhd", "train"): 41258, ("rhd", "test"): 2728,
}


class DataPreparationError(RuntimeError):
    """The configured data sets are not ready for training; the message lists every problem."""


@dataclass
class DataReport:
    """What ``prepare_data`` found: {set: {split: hands}}, problems, and the mask cache's state."""
    counts: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)        # one message per set that could not be read
    differing: list = field(default_factory=list)       # (set, split, found, published)
    masks_wanted: int = 0
    masks_computed: int = 0                              # by this run; the rest were cached


def configured_paths(config: dict) -> dict:
    """{set: folder} of the profile's ``[data]`` entries that are not empty."""
    paths = {name: str(value).strip() for name, value in table(config, "data").items() if str(value or "").strip()}
    unknown = sorted(set(paths) - set(LOADERS))
    if unknown:
        raise DataPreparationError(f"[data]: unknown set(s) {unknown}; expected {', '.join(LOADERS)}")
    return paths


def count_table(counts: dict) -> list[str]:
    """Lines of a table: hands found per set and split against the published counts."""
    lines = [f"{'set':<14} {'split':<6} {'found':>8} {'published':>10}  status"]
    for name, splits in counts.items():
        for split, found in splits.items():
            published = PUBLISHED_COUNTS.get((name, split))
            status = "-" if published is None else "as published" if found == published else \
                f"differs ({found - published:+d})"
            lines.append(f"{name:<14} {split:<6} {found:>8} {'-' if published is None else published:>10}  {status}")
    return lines


def prepare_data(config: dict, masks: bool = True, strict: bool = False, log=print) -> DataReport:
    """Verify every configured set, print its counts, build the GrabCut mask cache; see the module docstring.

    ``strict``: counts that differ from the published ones are an error too (a partial download
    that the loaders cannot tell from a complete one). Raises ``DataPreparationError`` naming
    every problem; nothing is computed for masks until every set reads.
    """
    paths = configured_paths(config)
    if not paths:
        raise DataPreparationError(
            f"profile {config.get('profile', '?')!r} configures no data set: give the folders in its [data] table "
            "or with --set data.stb=/data/stb (and panoptic, mpii_nzsl, dexter_object, egodexter); see "
            "docs/datasets.md for what to download and how to unpack it")
    report = DataReport()
    for name, root in paths.items():
        log(f"[prepare-data] reading {name} from {root} ...")
        try:
            report.counts[name] = {split: len(load_dataset(name, root, split)) for split in SPLITS[name]}
        except (DatasetNotFound, ValueError) as err:  # missing or partial folder, unreadable annotation
            report.problems.append(str(err))
    for line in count_table(report.counts):
        log(line)
    report.differing = [(name, split, found, PUBLISHED_COUNTS[(name, split)])
                        for name, splits in report.counts.items() for split, found in splits.items()
                        if PUBLISHED_COUNTS.get((name, split)) not in (None, found)]
    if strict:
        report.problems += [f"{name} {split}: {found} hands found, {published} published (partial download?)"
                            for name, split, found, published in report.differing]
    if report.problems:
        raise DataPreparationError(f"{len(report.problems)} problem(s) with the data sets; nothing else was done:\n"
                                   + "\n".join(f"- {p}" for p in report.problems))
    mixture = paper_training_mixture(config) if masks else None
    if mixture is not None and mixture.mask_cache is not None:
        report.masks_wanted = sum(entry["with_mask"] for entry in mixture.counts().values())
        log(f"[prepare-data] GrabCut masks of {report.masks_wanted} 2D-only training hands -> "
            f"{mixture.mask_cache.directory}")
        report.masks_computed = mixture.prepare_masks()
        log(f"[prepare-data] {report.masks_computed} computed now, {report.masks_wanted - report.masks_computed} "
            "were already cached")
    return report


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="wildhands prepare-data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="paper", help="profile name or TOML path (default: paper)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a profile setting, e.g. --set data.stb=/data/stb (repeatable)")
    parser.add_argument("--no-masks", action="store_true", help="only verify and count, no GrabCut masks")
    parser.add_argument("--strict", action="store_true", help="counts that differ from the published ones fail")
    args = parser.parse_args(argv)
    try:
        config = load_profile(args.config, parse_set_arguments(args.overrides))
        report = prepare_data(config, masks=not args.no_masks, strict=args.strict)
    except (DataPreparationError, ValueError, KeyError, FileNotFoundError) as err:
        print(f"[prepare-data] stopped: {err}")
        return 1
    if report.differing:
        print(f"[prepare-data] note: {len(report.differing)} split(s) differ from the published counts "
              "(--strict makes that an error)")
    print("[prepare-data] ready")
    return 0
