"""Tiny in-memory training sets in the common sample format, drawn from a hand model (for tests).

Images are flat silhouettes on noise (enough for the RGB variants to run, not to learn well).
"""
from __future__ import annotations

import numpy as np
import torch

from wildhands.hand import keypoints as kp
from wildhands.hand.camera import axis_angle_to_matrix


def make_samples(hand_model, count: int, seed: int = 0, crop_size: int = 320, crop_scale: float = 2.2,
                 pose_range: float = 2.0, with_images: bool = True) -> list[dict]:
    rng = np.random.default_rng(seed)
    betas = np.clip(rng.standard_normal((count, hand_model.num_betas)), -2, 2).astype(np.float32)
    pose = rng.uniform(-pose_range, pose_range, (count, hand_model.num_pca_comps)).astype(np.float32)
    orient = rng.normal(scale=0.6, size=(count, 3)).astype(np.float32)
    with torch.no_grad():
        hand = hand_model(betas=torch.as_tensor(betas), pose=torch.as_tensor(pose))
        rotation = axis_angle_to_matrix(torch.as_tensor(orient, dtype=torch.float64)).float()
        root = hand.keypoints[:, kp.ROOT:kp.ROOT + 1]
        kp3d = torch.einsum("bij,bnj->bni", rotation, hand.keypoints - root).numpy()
        verts = torch.einsum("bij,bnj->bni", rotation, hand.vertices - root).numpy()
    samples = []
    for i in range(count):
        low, high = kp3d[i, :, :2].min(0), kp3d[i, :, :2].max(0)
        scale = crop_size / crop_scale / float((high - low).max())
        trans = (crop_size - 1) / 2 - scale * (low + high) / 2
        keypoints_2d = scale * kp3d[i, :, :2] + trans
        verts_2d = scale * verts[i, :, :2] + trans
        mask = _silhouette(verts_2d, hand_model.faces, crop_size)
        image = None
        if with_images:
            image = rng.integers(0, 80, (crop_size, crop_size, 3), dtype=np.uint8)
            image[mask > 0] = (200, 150, 120)
        samples.append({
            "image": image, "keypoints_2d": keypoints_2d.astype(np.float32),
            "visible": np.ones(kp.NUM_KEYPOINTS, np.float32), "keypoints_3d": kp3d[i].astype(np.float32),
            "has_3d": np.float32(1), "mask": mask, "has_mask": np.float32(1),
            "betas": betas[i], "pose": pose[i], "global_orient": orient[i],
            "scale": np.array([scale], np.float32), "trans": trans.astype(np.float32),
            "has_params": np.float32(1), "is_left": False, "index": i, "source": "test",
        })
    return samples


def _silhouette(points_2d: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    import cv2

    mask = np.zeros((size, size), np.uint8)
    tris = np.round(points_2d[faces] * 4).astype(np.int32)  # 2 fractional bits
    cv2.fillPoly(mask, list(tris), 1, lineType=cv2.LINE_8, shift=2)
    return mask


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.samples[index]


def moved_from_2d(hand_model, config: dict, tmp_path, variant: str, stage: str = "pretrain"):
    """A seeded 2D network (its head made non-zero, so that it answers something), saved as a ``stage``
    checkpoint, and a ``variant`` network started from that checkpoint: ``(source, target, path)``."""
    from wildhands.net.checkpoints import load_encoder_weights_from_variant, read_checkpoint, save_checkpoint
    from wildhands.net.model import build_model

    torch.manual_seed(0)
    source = build_model(config, hand_model, variant="2d").eval()
    torch.nn.init.normal_(source.encoder.head.weight, std=0.01)
    path = save_checkpoint(tmp_path / "2d.pt", model=source, config=config, stage=stage, step=1)
    target = build_model(config, hand_model, variant=variant).eval()
    load_encoder_weights_from_variant(target, read_checkpoint(path), path)
    return source, target, path
