"""Real hand data sets, read in their published on-disk formats with the paper's splits.

Each set has a loader ``load_<set>(root, split) -> list[HandRecord]`` (``common.HandRecord``:
one hand in one image, in the project's keypoint order and units); ``JointHandDataset``
(``joint``) turns record lists into training samples. No data set is downloaded or shipped:
users unpack them (docs/datasets.md) and pass their folders as notebook parameters (the
profiles' ``[data]`` table).

The paper (sec. 7) trains on STB train (3D labels) with PANOPTIC and MPII+NZSL train (2D
labels only) and evaluates on STB test, DEXTER+OBJECT, EGODEXTER and MPII+NZSL test.
"""
from __future__ import annotations

from wildhands.config import setting
from wildhands.data.datasets import dexter_object, egodexter, freihand, mpii_nzsl, panoptic, rhd, stb
from wildhands.data.datasets.common import DatasetNotFound, HandRecord
from wildhands.data.datasets.dexter_object import load_dexter_object
from wildhands.data.datasets.egodexter import load_egodexter
from wildhands.data.datasets.freihand import load_freihand
from wildhands.data.datasets.joint import JointHandDataset
from wildhands.data.datasets.mpii_nzsl import load_mpii_nzsl
from wildhands.data.datasets.panoptic import load_panoptic
from wildhands.data.datasets.rhd import load_rhd
from wildhands.data.datasets.stb import load_stb

_MODULES = {m.NAME: m for m in (stb, panoptic, mpii_nzsl, dexter_object, egodexter, freihand, rhd)}
LOADERS = {name: getattr(m, f"load_{name}") for name, m in _MODULES.items()}
SPLITS = {name: tuple(m.SPLITS) for name, m in _MODULES.items()}
# The paper's training mixture and test sets, as (set, split).
PAPER_TRAIN = (("stb", "train"), ("panoptic", "train"), ("mpii_nzsl", "train"))
PAPER_TEST = (("stb", "test"), ("dexter_object", "test"), ("egodexter", "test"), ("mpii_nzsl", "test"))
# Training images per set in the paper (sec. 7): 31729 in all, 15000 with 3D labels. The paper
# prints 14847 for PANOPTIC, but its own totals (31729; 16729 2D-only) and the annotation file
# (hands_v143_14817.json) give 14817.
PAPER_TRAIN_COUNTS = {"stb": 15000, "panoptic": 14817, "mpii_nzsl": 1912}
PAPER_TRAIN_TOTAL = 31729


def load_dataset(name: str, root, split: str, **options) -> list[HandRecord]:
    """Records of set ``name`` (a key of ``LOADERS``) and ``split`` from ``root``."""
    if name not in LOADERS:
        raise ValueError(f"data set {name!r}: expected one of {', '.join(LOADERS)}")
    return LOADERS[name](root, split, **options)


def index_datasets(paths: dict) -> dict:
    """{set: {split: record count}} for every set whose path in ``paths`` is not empty.

    ``paths`` maps set names (keys of ``LOADERS``) to folders, as the profiles' ``[data]``
    table does; empty entries are skipped. A set that is missing or incomplete raises
    ``DatasetNotFound`` naming the files expected.
    """
    unknown = sorted(set(paths) - set(LOADERS))
    if unknown:
        raise ValueError(f"data paths: unknown set(s) {unknown}; expected {', '.join(LOADERS)}")
    return {name: {split: len(load_dataset(name, root, split)) for split in SPLITS[name]}
            for name, root in paths.items() if root is not None and str(root).strip()}



def paper_training_mixture(config: dict, **options) -> JointHandDataset | None:
    """``JointHandDataset`` of the paper's training sets (``PAPER_TRAIN``) that the profile's
    ``[data]`` table gives folders for, with its crop and GrabCut settings; None when it gives none.

    ``options`` go to ``JointHandDataset.from_config`` (e.g. ``crop_scale=1.5``, ``mask_dir``).
    """
    paths = {name: setting(config, "data", name) for name, _ in PAPER_TRAIN}
    chosen = [(name, split) for name, split in PAPER_TRAIN if str(paths[name] or "").strip()]
    if not chosen:
        return None
    return JointHandDataset.from_config(config, *(load_dataset(name, paths[name], split) for name, split in chosen),
                                        **options)
