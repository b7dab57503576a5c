import re
from pathlib import Path

import numpy as np
import pytest

from wildhands.eval import metrics
from wildhands.eval import paper_reference as ref
from wildhands.paths import SHARED_DIR

SOURCE_DIR = SHARED_DIR / "paper_reference"


def test_reference_loads_and_names_its_source():
    data = ref.load_paper_reference()
    assert "Boukhayma" in data["source"] and "CVPR 2019" in data["source"] and "CC BY-NC 4.0" in data["source"]
    assert set(data["sets"]) == {"stereo", "dexter+object", "egodexter", "mpii+nzsl"}
    assert ref.paper_set("stb")["mean_error"]["rgb"] == 9.76
    assert ref.paper_set("mpii+nzsl")["mean_error"]["zb"] == 59.40
    assert ref.paper_set("egodexter")["mean_error"]["2d"] == 45.33
    x, y = ref.paper_curve("dexter+object", "rgb+2d")
    assert len(x) == 51 and x[20] == 20 and 0 <= y.min() and y.max() <= 1
    assert ref.label("2dfit") == "2D fit" and ref.method_key("Zimm. et al.") == "zb"
    for number, spec in data["figures"].items():
        for method in spec["methods"]:
            ref.paper_curve(spec["set"], method)  # every curve a figure draws is there


def test_bad_names_are_clear_errors():
    with pytest.raises(ValueError, match="evaluation set"):
        ref.paper_set("freihand")
    with pytest.raises(ValueError, match="method"):
        ref.paper_curve("mpii+nzsl", "gan")


def _read_source(path: Path, column: int) -> tuple[np.ndarray, np.ndarray]:
    rows = [[float(v) for v in re.split(r"[\s,;]+", line.strip()) if v]
            for line in path.read_text().splitlines() if line.strip()]
    if all(len(r) == 1 for r in rows):
        return np.arange(len(rows), dtype=float), np.array([r[0] for r in rows])
    return np.array([r[0] for r in rows]), np.array([r[column] for r in rows])


@pytest.mark.skipif(not SOURCE_DIR.is_dir(), reason="the paper's released curve data is not on this machine")
def test_transcription_matches_the_released_files():
    for set_name, entry in ref.load_paper_reference()["sets"].items():
        for method, curve in entry["curves"].items():
            column = 2 if (set_name, method) == ("stereo", "gan") else 1  # fig. 4 draws the second PCK column
            x, y = _read_source(SOURCE_DIR / curve["file"], column)
            ours_x, ours_y = ref.paper_curve(set_name, method)
            np.testing.assert_array_equal(ours_x, x, err_msg=curve["file"])
            np.testing.assert_array_equal(ours_y, y, err_msg=curve["file"])
    table = (SOURCE_DIR / "README.md").read_text()
    assert "| STB 3D mm | 9.76 | 10.18 | 10.46 | 23.21 |" in table
    assert "| Dexter+Object 3D mm | 33.16 | 25.53 | 25.93 | 41.18 | 40.20 | 34.75 |" in table


def test_comparison_rows_paper_vs_ours():
    summary = {"mean_mm": 12.0, "auc": 0.9}
    rows = ref.comparison_rows("stb", {"Ours RGB": summary, "2dfit": 30.0})
    by_method = {r["method"]: r for r in rows}
    assert [r["method"] for r in rows] == ["rgb", "rgb+2d", "2d", "2dfit"]
    assert by_method["rgb"]["paper_mean"] == 9.76 and by_method["rgb"]["ours_mean"] == 12.0
    assert by_method["rgb"]["difference"] == pytest.approx(12.0 - 9.76)
    assert by_method["rgb"]["ours_auc"] == 0.9 and by_method["2dfit"]["ours_auc"] is None
    assert by_method["rgb+2d"]["ours_mean"] is None
    x, y = ref.paper_curve("stb", "rgb")
    assert by_method["rgb"]["paper_auc"] == pytest.approx(metrics.curve_auc(x, y, 20, 50))
    assert 0.9 < by_method["rgb"]["paper_auc"] <= 1.0
    text = ref.format_rows(rows, "Table 1")
    assert "| Ours RGB | 9.76 | 12.00 | 2.24 |" in text
    rows = ref.comparison_rows("dexter+object")
    assert [r["label"] for r in rows] == ["Ours RGB", "Ours RGB+2D", "Ours 2D", "2D fit", "Spurr et al.",
                                          "Zimm. et al."]


def test_pck_comparison_figure(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from wildhands.app import plots

    errors = np.random.default_rng(0).uniform(0, 60, size=(20, 21))
    ours = {"Ours 2D": metrics.summarize_errors(errors, np.arange(0, 51), (20, 50), "mm"),
            "2dfit": (np.arange(0, 51), np.linspace(0, 1, 51))}
    fig = plots.pck_comparison_figure("stereo", ours)
    assert len(fig.axes) == 2
    labels = fig.axes[1].get_legend_handles_labels()[1]
    assert "Ours 2D" in labels and "Ours 2D (paper)" in labels and "2D fit" in labels and "PSO" in labels
    assert fig.axes[0].get_xlim() == (20, 50)
    fig8 = plots.pck_comparison_figure(8)
    assert fig8.axes[0].get_xlim() == (0, 30) and fig8.axes[0].get_xlabel() == "Error Thresholds (px)"
    plots.save_figure(fig, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 1000
