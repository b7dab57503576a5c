"""How well the hand model expresses real captured poses (DexYCB): fit residuals per split and pose
space, the real mean pose, and figures of the worst fits. Notebook 00 and benchmarks/bench_real_poses.py.

DexYCB (Chao et al., CVPR 2021), CC BY-NC 4.0.
"""
from __future__ import annotations

import numpy as np

from wildhands.app.plots import VIEWS, mesh_gallery_figure, save_figure, skeleton_pairs_figure
from wildhands.data.datasets.real_poses import CITATION, SPLIT_SUBJECTS, load_real_poses
from wildhands.data.real_pose_space import FIT_SPACES, MM, fit_real_poses, fit_summary, hand_extent, mean_pose_report
from wildhands.fit.fit3d import Fit3DResult
from wildhands.hand import open_hand as oh
from wildhands.hand.hand_model import HandModel, load_mano_arrays


def evaluate_real_poses(hand_model: HandModel, splits=("train", "test"), spaces=tuple(FIT_SPACES),
                        limit: int | None = None, path=None, worst: int = 4, figures_dir=None, log=print) -> dict:
    """Fit the real poses of each split in each pose space: JSON-ready metrics (``fit_summary`` per
    split and space, the real mean pose from the "full" fits beside the model's theta = 0) and, with
    ``figures_dir``, ``real_poses_worst_<space>.png``: the test split's ``worst`` fits beside the real
    joints. ``limit``: frames per split, evenly spaced (None: all). ``log`` prints the table's rows."""
    import time

    unknown = sorted(set(spaces) - set(FIT_SPACES))
    if unknown:
        raise ValueError(f"pose spaces {unknown}: expected some of {', '.join(FIT_SPACES)}")
    metrics = {"source": CITATION, "hand_model": {"name": hand_model.name, "hash": hand_model.hash},
               "limit": limit, "split_subjects": SPLIT_SUBJECTS, "fit_spaces": {s: FIT_SPACES[s] for s in spaces},
               "splits": {}, "figures": {}}
    full_fits = {}
    log(TABLE_HEADER)
    for split in splits:
        poses = load_real_poses(split, path).subsample(limit)
        metrics["splits"][split] = {}
        for space in spaces:
            started = time.perf_counter()
            result = fit_real_poses(hand_model, poses.joints, space)
            summary = {**fit_summary(result, poses.joints), "seconds": time.perf_counter() - started}
            metrics["splits"][split][space] = summary
            log(table_row(split, space, summary))
            if space == "full":  # the reported 45-D space (plausible shape, joints within range)
                full_fits[split] = result.finger_pose.numpy()
            if split == "test" and worst > 0 and figures_dir is not None:
                metrics["figures"][space] = str(draw_worst_fits(poses, result, space, worst, figures_dir))
    if full_fits:
        source = "train" if "train" in full_fits else next(iter(full_fits))
        metrics["mean_pose"] = {"from": source, **mean_pose_report(hand_model, full_fits[source])}
        if figures_dir is not None:
            metrics["figures"]["mean_pose"] = str(draw_mean_poses(hand_model, full_fits[source], figures_dir))
    return metrics


def draw_mean_poses(hand_model: HandModel, finger_poses: np.ndarray, figures_dir):
    """``real_poses_mean_pose.png``: the mean-shape hand flat, at the model's theta = 0 and at the
    mean of the fitted real poses, seen from the side of the thumb and from the back."""
    from pathlib import Path

    import matplotlib.pyplot as plt

    arrays = load_mano_arrays(hand_model.path)
    verts = np.asarray(arrays["v_template"], np.float64)
    poses = {"flat": np.zeros(45), "model theta = 0": np.asarray(arrays["hands_mean"], np.float64),
             "real mean (DexYCB fits)": np.asarray(finger_poses, np.float64).mean(0)}
    _, meshes = oh.forward(np.asarray(arrays["J_regressor"] @ verts), np.stack(list(poses.values())), verts,
                           np.asarray(arrays["weights"]))
    extents = hand_extent(arrays, np.stack(list(poses.values()))) * MM
    titles = [f"{name}: {extent:.0f} mm" for name, extent in zip(poses, extents)]
    fig = mesh_gallery_figure(list(meshes) * 2, hand_model.faces, [f"{t}\nthumb side" for t in titles]
                              + [f"{t}\nback" for t in titles], columns=3, view=VIEWS["thumb side"])
    for ax in fig.axes[3:]:
        ax.view_init(*VIEWS["back"])
    path = save_figure(fig, Path(figures_dir) / "real_poses_mean_pose.png")
    plt.close(fig)
    return path


TABLE_HEADER = (f"{'split':6s} {'space':5s} {'hands':>6s} {'median':>7s} {'p90':>6s} {'mean':>6s} {'its':>5s} "
                f"{'s':>6s}   (per-hand mean keypoint residual, mm)")


def table_row(split: str, space: str, summary: dict) -> str:
    return (f"{split:6s} {space:5s} {summary['hands']:6d} {summary['median_mm']:7.2f} {summary['p90_mm']:6.2f} "
            f"{summary['mean_mm']:6.2f} {summary['mean_iterations']:5.1f} {summary.get('seconds', 0):6.1f}")


def residual_table(metrics: dict) -> str:
    """The metrics' residuals as the printed table."""
    return "\n".join([TABLE_HEADER] + [table_row(split, space, summary) for split, spaces in metrics["splits"].items()
                                       for space, summary in spaces.items()])


def draw_worst_fits(poses, result: Fit3DResult, space: str, count: int, figures_dir):
    """``real_poses_worst_<space>.png`` in ``figures_dir``: the ``count`` worst fits beside the real joints."""
    from pathlib import Path

    import matplotlib.pyplot as plt

    errors = result.mean_error.numpy()
    worst = np.argsort(-errors, kind="stable")[:count]
    titles = [f"subject {poses.subject[i]:02d} {poses.sequence[i]} #{poses.frame[i]}\n{MM * errors[i]:.1f} mm"
              for i in worst]
    fig = skeleton_pairs_figure(poses.joints[worst], result.keypoints_3d.numpy()[worst], titles,
                                fit_label=f"fit ({space})")
    fig.suptitle(f"Worst {space} fits, subjects {', '.join(f'{s:02d}' for s in sorted(set(poses.subject)))} "
                 "(DexYCB, CC BY-NC 4.0)", fontsize=9)
    path = save_figure(fig, Path(figures_dir) / f"real_poses_worst_{space}.png")
    plt.close(fig)
    return path
