"""Real-data loaders on tiny fixtures written in each set's published layout, and the mixture."""
from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest
import scipy.io
import torch

from wildhands.data.datasets import (PAPER_TRAIN_COUNTS, PAPER_TRAIN_TOTAL, DatasetNotFound, JointHandDataset,
                                     dexter_object, egodexter, index_datasets, load_dexter_object, load_egodexter,
                                     load_freihand, load_mpii_nzsl, load_panoptic, load_rhd, load_stb, stb)
from wildhands.data.datasets.common import project
from wildhands.data.datasets.fixtures import (hand_2d, hand_3d, tip_line, write_image, write_mpii_nzsl, write_panoptic,
                                              write_stb)
from wildhands.hand import keypoints as kp

WRIST, THUMB_TIP, INDEX_MCP, PINKY_TIP = 0, 4, 5, 20


# ----------------------------------------------------------------------------- loaders

def test_stb_order_units_frames_and_splits(tmp_path):
    truth = write_stb(tmp_path)
    test = load_stb(tmp_path, "test")
    train = load_stb(tmp_path, "train")
    assert [r.id for r in test] == ["B1Counting/0", "B1Counting/1", "B1Random/0", "B1Random/1"]
    assert len(train) == 20 and {r.id.split("/")[0] for r in train} == set(stb.SEQUENCES[2:])
    record = test[1]
    expected = truth["B1Counting"][1]
    np.testing.assert_allclose(record.keypoints_3d, expected, atol=1e-9)   # mm -> m, depth -> colour frame
    u = stb.SK_COLOR_K[0, 0] * expected[:, 0] / expected[:, 2] + stb.SK_COLOR_K[0, 2]
    np.testing.assert_allclose(record.keypoints_2d[:, 0], u, atol=1e-6)
    assert record.root == "palm" and record.is_left and record.dataset == "stb" and record.split == "test"
    assert record.visible.all() and record.scored.all()
    assert record.image_path == tmp_path / "images/B1Counting/SK_color_1.png"


def test_stb_keypoint_order_from_the_file(tmp_path):
    write_stb(tmp_path, frames=1)
    para = np.zeros((3, 21, 1))
    para[:, :, 0] = np.arange(21)[None, :] + 100.0 * np.arange(3)[:, None]  # row = STB index
    scipy.io.savemat(tmp_path / "labels" / "B1Counting_BB.mat", {"handPara": para})
    record = load_stb(tmp_path, "test", camera="BB_left")[0]
    stb_index = np.round(record.keypoints_3d[:, 0] * 1000).astype(int)
    assert stb_index[WRIST] == 0            # palm centre stays keypoint 0
    assert stb_index[PINKY_TIP] == 4        # STB: little MCP, PIP, DIP, tip come first
    assert stb_index[THUMB_TIP] == 20       # ... and thumb tip last
    assert stb_index[INDEX_MCP] == 13


def test_stb_right_camera_is_a_baseline_away(tmp_path):
    truth = write_stb(tmp_path, frames=1)
    right = load_stb(tmp_path, "test", camera="BB_right")[0]
    np.testing.assert_allclose(right.keypoints_3d[:, 0], truth["B1Counting"][0][:, 0] - stb.BB_BASELINE_MM / 1000)
    np.testing.assert_allclose(right.intrinsics, stb.BB_K)


def test_stb_missing_or_partial_set_names_the_files(tmp_path):
    with pytest.raises(DatasetNotFound, match="labels/B1Counting_SK.mat"):
        load_stb(tmp_path, "test")
    with pytest.raises(DatasetNotFound, match="no path given"):
        load_stb("", "test")
    write_stb(tmp_path)
    (tmp_path / "images/B1Random/SK_color_1.png").unlink()
    with pytest.raises(DatasetNotFound, match="images/B1Random/SK_color_1.png"):
        load_stb(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        load_stb(tmp_path, "val")


def test_panoptic_keypoints_and_visibility(tmp_path):
    joints = write_panoptic(tmp_path)
    records = load_panoptic(tmp_path)
    assert len(records) == 2 and all(r.keypoints_3d is None and not r.is_left for r in records)
    np.testing.assert_allclose(records[0].keypoints_2d[[WRIST, THUMB_TIP]], joints[0][[WRIST, THUMB_TIP], :2])
    assert records[1].visible[PINKY_TIP] == 0 and np.isnan(records[1].keypoints_2d[PINKY_TIP]).all()
    assert records[1].visible.sum() == 20 and np.array_equal(records[1].scored, records[1].visible)
    (tmp_path / "imgs/00000001.jpg").unlink()
    with pytest.raises(DatasetNotFound, match="imgs/00000001.jpg"):
        load_panoptic(tmp_path)


def test_mpii_nzsl_splits_sides_and_masks(tmp_path):
    hands = write_mpii_nzsl(tmp_path)
    train, test = load_mpii_nzsl(tmp_path, "train"), load_mpii_nzsl(tmp_path, "test")
    assert len(train) == 2 and len(test) == 1
    by_id = {r.id: r for r in train + test}
    for stem, (points, is_left) in hands.items():
        record = by_id[stem]
        assert record.is_left == bool(is_left) and record.image_path == tmp_path / f"{stem}.jpg"
        np.testing.assert_allclose(record.keypoints_2d[[WRIST, PINKY_TIP]], points[[WRIST, PINKY_TIP]])
        assert record.visible[INDEX_MCP] == 0 and record.visible.sum() == 20
    (tmp_path / "manual_test/Berry_roof_story.flv_000053_l.jpg").unlink()
    with pytest.raises(DatasetNotFound, match="Berry_roof_story.flv_000053_l.jpg"):
        load_mpii_nzsl(tmp_path, "test")


def test_dexter_object_fingertips_axes_and_skipped_frames(tmp_path):
    tips_colour = hand_3d(0.5)[list(kp.FINGERTIPS)]                   # thumb .. pinky, metres
    rotation, translation = dexter_object.DEPTH_TO_COLOR[:, :3], dexter_object.DEPTH_TO_COLOR[:, 3]
    sensor = np.linalg.solve(rotation, (tips_colour * 1000 - translation).T).T * dexter_object.SENSOR_TO_CAMERA_AXES
    for s, sequence in enumerate(dexter_object.SEQUENCES):
        invalid = sensor.copy()
        invalid[1] = (0, 0, dexter_object.INVALID_Z_MM)               # index tip not annotated
        unannotated = np.full((5, 3), 0.0)
        unannotated[:, 2] = dexter_object.INVALID_Z_MM
        lines = [tip_line(sensor), tip_line(invalid), tip_line(unannotated)]
        path = tmp_path / dexter_object.annotation_path(sequence)
        path.parent.mkdir(parents=True)
        path.write_text("\n".join(lines) + "\n")
        for f in range(3):
            write_image(tmp_path / "data" / sequence / "color" / f"image_{f:05d}.png", 32, 24)
    records = load_dexter_object(tmp_path)
    assert len(records) == 12                                         # frames without any tip are skipped
    first, second = records[0], records[1]
    np.testing.assert_allclose(first.keypoints_3d[list(kp.FINGERTIPS)], tips_colour, atol=1e-6)
    assert np.isnan(first.keypoints_3d[WRIST]).all() and not first.has_3d
    assert first.scored.sum() == 5 and first.scored[list(kp.FINGERTIPS)].all() and first.is_left
    np.testing.assert_allclose(first.keypoints_2d[THUMB_TIP], project(tips_colour[0], dexter_object.COLOR_K), atol=1e-3)
    assert second.scored[8] == 0 and second.scored.sum() == 4 and second.id == "Grasp1/image_00001"
    (tmp_path / "data/Rotate/annotations/Rotate3D.txt").unlink()
    with pytest.raises(DatasetNotFound, match="Rotate3D.txt"):
        load_dexter_object(tmp_path)


def test_egodexter_fingertips_and_unannotated_frames(tmp_path):
    tips_colour = hand_3d(0.4)[list(kp.FINGERTIPS)]
    rotation, translation = egodexter.DEPTH_TO_COLOR[:, :3], egodexter.DEPTH_TO_COLOR[:, 3]
    depth = np.linalg.solve(rotation, (tips_colour * 1000 - translation).T).T
    for sequence in egodexter.SEQUENCES:
        partial = depth.copy()
        partial[4] = 0.0                                              # little finger: zeros = not annotated
        lines = [tip_line(depth), tip_line(np.zeros((5, 3))), tip_line(partial)]
        path = tmp_path / egodexter.annotation_path(sequence)
        path.parent.mkdir(parents=True)
        path.write_text("\n".join(lines))
        for f in range(3):
            write_image(tmp_path / "data" / sequence / "color" / f"image_{f}.png", 32, 24)
    records = load_egodexter(tmp_path)
    assert len(records) == 8 and [r.id for r in records[:2]] == ["Desk/image_0", "Desk/image_2"]
    np.testing.assert_allclose(records[0].keypoints_3d[list(kp.FINGERTIPS)], tips_colour, atol=1e-6)
    assert records[1].scored[PINKY_TIP] == 0 and records[1].scored.sum() == 4


def test_freihand_versions_projection_and_evaluation(tmp_path):
    xyz = np.stack([hand_3d(0.6), hand_3d(0.7)])
    K = np.stack([np.array([[480.0, 0, 112], [0, 480, 112], [0, 0, 1]])] * 2)
    for prefix in ("training", "evaluation"):
        (tmp_path / f"{prefix}_xyz.json").write_text(json.dumps(xyz.tolist()))
        (tmp_path / f"{prefix}_K.json").write_text(json.dumps(K.tolist()))
        for i in range(8 if prefix == "training" else 2):
            write_image(tmp_path / prefix / "rgb" / f"{i:08d}.jpg", 24, 24)
    train = load_freihand(tmp_path, "train")
    assert len(train) == 8 and train[5].image_path.name == "00000005.jpg"
    np.testing.assert_allclose(train[5].keypoints_3d, xyz[1])                  # version 2 of sample 1
    np.testing.assert_allclose(train[0].keypoints_2d[WRIST], 480 * xyz[0, WRIST, :2] / xyz[0, WRIST, 2] + 112)
    assert len(load_freihand(tmp_path, "train", versions=(0,))) == 2
    assert len(load_freihand(tmp_path, "test")) == 2
    (tmp_path / "training/rgb/00000007.jpg").unlink()
    with pytest.raises(DatasetNotFound, match="00000007.jpg"):
        load_freihand(tmp_path, "train")


def test_rhd_tip_first_order_sides_and_visibility(tmp_path):
    def rhd_rows(points):  # OpenPose order -> RHD's wrist + tip-to-base fingers
        rows = np.empty_like(points)
        rows[0] = points[0]
        for f in range(5):
            rows[1 + 4 * f:5 + 4 * f] = points[4 + 4 * f:4 * f:-1]
        return rows

    uv = hand_2d(160, 160, 120)
    xyz = hand_3d(0.5)
    both_visible = np.ones(42)
    both_visible[:21] = 0                                               # sample 0: only the right hand shows
    left_dominant = np.ones(42)
    left_dominant[21:30] = 0
    annotations = {}
    for sample, vis in enumerate((both_visible, left_dominant)):
        rows_uv = np.vstack([rhd_rows(uv), rhd_rows(uv + 5)])
        annotations[sample] = {"uv_vis": np.column_stack([rows_uv, vis]), "K": np.eye(3),
                               "xyz": np.vstack([rhd_rows(xyz), rhd_rows(xyz)])}
        write_image(tmp_path / "training" / "color" / f"{sample:05d}.png", 32, 32)
    with open(tmp_path / "training" / "anno_training.pickle", "wb") as f:
        pickle.dump(annotations, f, protocol=2)
    records = load_rhd(tmp_path, "train")
    assert [r.is_left for r in records] == [False, True]
    right = records[0]
    np.testing.assert_allclose(right.keypoints_2d, uv + 5)             # order converted back exactly
    np.testing.assert_allclose(right.keypoints_3d, xyz)
    assert right.visible.all() and records[1].visible.all()
    assert len(load_rhd(tmp_path, "train", hands="both")) == 3          # sample 0's left hand shows nothing


def test_index_datasets_and_paper_counts(tmp_path):
    write_mpii_nzsl(tmp_path / "hand_labels")
    counts = index_datasets({"mpii_nzsl": tmp_path / "hand_labels", "stb": "", "panoptic": ""})
    assert counts == {"mpii_nzsl": {"train": 2, "test": 1}}
    assert sum(PAPER_TRAIN_COUNTS.values()) == PAPER_TRAIN_TOTAL == 31729
    with pytest.raises(DatasetNotFound, match="hands_v143_14817.json"):
        index_datasets({"panoptic": tmp_path / "nowhere"})
    with pytest.raises(ValueError, match="unknown"):
        index_datasets({"nzsl": tmp_path})


# ----------------------------------------------------------------------------- the mixture

def test_joint_dataset_mixes_3d_and_2d_samples(tmp_path):
    write_stb(tmp_path / "stb", frames=1, draw=True)
    write_mpii_nzsl(tmp_path / "hand_labels")
    stb_records = load_stb(tmp_path / "stb", "test")
    mpii_records = load_mpii_nzsl(tmp_path / "hand_labels", "train")
    mixture = JointHandDataset(stb_records, mpii_records, mask_dir=tmp_path / "masks")
    assert len(mixture) == 4
    assert mixture.counts() == {"stb": {"samples": 2, "with_3d": 2, "with_mask": 0},
                                "mpii_nzsl": {"samples": 2, "with_3d": 0, "with_mask": 2}}

    s3d, s2d = mixture[0], mixture[2]
    for sample in (s3d, s2d):
        assert sample["image"].shape == (320, 320, 3) and sample["image"].dtype == np.uint8
        assert sample["keypoints_2d"].shape == (21, 2) and sample["keypoints_2d"].dtype == np.float32
        assert sample["mask"].shape == (320, 320) and sample["mask"].dtype == np.uint8
        assert sample["betas"].shape == (10,) and sample["has_params"] == 0 and sample["scale"].shape == (1,)
        wrist = np.round(sample["keypoints_2d"][WRIST]).astype(int)
        r, g, b = sample["image"][wrist[1], wrist[0]].astype(int)       # the red wrist dot, mirrored or not
        assert r > 200 and g < 60 and b < 60
    # 3D: root-relative, left hand mirrored (x negated); no GrabCut mask
    record = stb_records[0]
    relative = record.keypoints_3d - record.keypoints_3d[0]
    np.testing.assert_allclose(s3d["keypoints_3d"], relative * [-1, 1, 1], atol=1e-6)
    assert s3d["has_3d"] == 1 and s3d["has_mask"] == 0 and s3d["is_left"] and s3d["source"] == "stb"
    # 2D-only: GrabCut mask on the hand, unlabelled keypoint zeroed and masked
    assert s2d["has_3d"] == 0 and not s2d["keypoints_3d"].any() and s2d["has_mask"] == 1
    assert s2d["visible"][INDEX_MCP] == 0 and not s2d["keypoints_2d"][INDEX_MCP].any()
    middle = np.round(s2d["keypoints_2d"][10]).astype(int)
    assert s2d["mask"][middle[1], middle[0]] == 1 and 0.01 < s2d["mask"].mean() < 0.5
    # left hands come out as right hands: the thumb is on the left of the pinky for both
    for sample in (s2d, mixture[3]):
        assert sample["keypoints_2d"][THUMB_TIP, 0] < sample["keypoints_2d"][PINKY_TIP, 0]

    computed = mixture.mask_cache.computed
    assert mixture.prepare_masks() == 2 - computed and mixture.prepare_masks() == 0   # cached once
    batch = next(iter(torch.utils.data.DataLoader(mixture, batch_size=4, shuffle=False)))
    assert batch["image"].shape == (4, 320, 320, 3) and batch["keypoints_3d"].shape == (4, 21, 3)
    assert batch["has_3d"].tolist() == [1, 1, 0, 0] and batch["has_mask"].tolist() == [0, 0, 1, 1]
    assert batch["source"] == ["stb", "stb", "mpii_nzsl", "mpii_nzsl"]


def test_joint_dataset_crop_scale_and_bad_input(tmp_path):
    write_mpii_nzsl(tmp_path)
    records = load_mpii_nzsl(tmp_path, "train")
    wide = JointHandDataset(records, grabcut="none", crop_size=64)[0]
    tight = JointHandDataset(records, grabcut="none", crop_size=64, crop_scale=1.5)[0]
    spread = lambda s: np.ptp(s["keypoints_2d"][s["visible"] > 0], axis=0).max()  # noqa: E731
    assert spread(tight) / spread(wide) == pytest.approx(2.2 / 1.5, rel=1e-3)
    assert wide["has_mask"] == 0 and not wide["mask"].any()
    tips_only = dataclasses.replace(records[0], visible=np.isin(np.arange(21), kp.FINGERTIPS).astype(float))
    assert JointHandDataset([tips_only], mask_dir=tmp_path).counts()["mpii_nzsl"]["with_mask"] == 0  # no bone to seed
    with pytest.raises(ValueError, match="no records"):
        JointHandDataset([], [])
    with pytest.raises(ValueError, match="grabcut"):
        JointHandDataset(records, grabcut="sometimes")
