"""prepare-data on real-format fixtures: counts against the published ones, every message, resuming."""
from __future__ import annotations

import pytest

from wildhands.cli import main as cli_main
from wildhands.config import load_profile
from wildhands.data.datasets.fixtures import write_mpii_nzsl, write_panoptic, write_paper_fixtures, write_stb
from wildhands.data.datasets.prepare import DataPreparationError, count_table, prepare_data


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    monkeypatch.setattr("wildhands.data.datasets.joint.OUTPUTS_DIR", tmp_path / "outputs")
    return tmp_path / "outputs"


def paper_with(paths: dict) -> dict:
    return load_profile("paper", {f"data.{name}": str(root) for name, root in paths.items()})


def test_counts_against_the_published_ones_and_a_resumable_mask_cache(tmp_path, outputs):
    paths = write_paper_fixtures(tmp_path / "data")
    lines = []
    report = prepare_data(paper_with(paths), log=lines.append)
    assert report.counts == {"stb": {"train": 10, "test": 2}, "panoptic": {"train": 2},
                             "mpii_nzsl": {"train": 2, "test": 1}, "dexter_object": {"test": 6},
                             "egodexter": {"test": 4}}
    text = "\n".join(lines)
    assert "stb            train        10      15000  differs (-14990)" in text
    assert "dexter_object  test          6          -  -" in text
    assert ("mpii_nzsl", "train", 2, 1912) in report.differing
    masks = outputs / "data" / "masks"
    assert report.masks_wanted == 4 == report.masks_computed and len(list(masks.glob("*.png"))) == 4
    assert "4 computed now, 0 were already cached" in text
    # Resumed: what is cached stays; an interrupted run's missing mask is the only one computed.
    sorted(masks.glob("*.png"))[0].unlink()
    again = prepare_data(paper_with(paths), log=lines.append)
    assert again.masks_computed == 1 and len(list(masks.glob("*.png"))) == 4
    assert not list(masks.glob(".*.tmp"))                                  # nothing half-written


def test_count_table_says_when_a_split_is_as_published():
    assert count_table({"panoptic": {"train": 14817}})[1].endswith("as published")


def test_missing_and_partial_folders_are_all_named_before_anything_is_computed(tmp_path, outputs):
    write_stb(tmp_path / "stb", frames=1)
    (tmp_path / "stb" / "images" / "B3Random" / "SK_color_0.png").unlink()     # a partial download
    write_mpii_nzsl(tmp_path / "hand_labels")
    config = paper_with({"stb": tmp_path / "stb", "panoptic": tmp_path / "no_such_folder",
                         "mpii_nzsl": tmp_path / "hand_labels"})
    with pytest.raises(DataPreparationError) as err:
        prepare_data(config, log=lambda line: None)
    message = str(err.value)
    assert message.startswith("2 problem(s) with the data sets; nothing else was done")
    assert "stb: data set not found or incomplete under" in message and "images/B3Random/SK_color_0.png" in message
    assert f"panoptic: data set not found or incomplete under {tmp_path / 'no_such_folder'}" in message
    assert "is not a folder" in message and "docs/datasets.md" in message
    assert not (outputs / "data" / "masks").exists()


def test_strict_counts_no_set_and_unknown_set(tmp_path, outputs):
    write_panoptic(tmp_path / "panoptic")
    with pytest.raises(DataPreparationError, match=r"panoptic train: 2 hands found, 14817 published \(partial"):
        prepare_data(paper_with({"panoptic": tmp_path / "panoptic"}), masks=False, strict=True, log=lambda _: None)
    with pytest.raises(DataPreparationError, match="configures no data set.*--set data.stb="):
        prepare_data(load_profile("paper"))
    with pytest.raises(KeyError, match="'nzsl'.*known: dexter_object"):   # a misspelt --set
        load_profile("paper", {"data.nzsl": str(tmp_path)})
    config = load_profile("paper")
    config["data"]["nzsl"] = str(tmp_path)                                  # a profile file's unknown set
    with pytest.raises(DataPreparationError, match="unknown set"):
        prepare_data(config)


def test_command_line(tmp_path, outputs, capsys):
    write_mpii_nzsl(tmp_path / "hand_labels")
    assert cli_main(["prepare-data", "--config", "paper", "--set", f"data.mpii_nzsl={tmp_path / 'hand_labels'}"]) == 0
    out = capsys.readouterr().out
    assert "mpii_nzsl      test          1        846  differs (-845)" in out and "ready" in out
    assert "2 computed now" in out
    assert cli_main(["prepare-data", "--config", "paper", "--set", f"data.stb={tmp_path / 'nowhere'}"]) == 1
    assert "stopped: 1 problem(s)" in capsys.readouterr().out
