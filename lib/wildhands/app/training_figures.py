"""Figures of a network's predictions on samples, for the notebooks (training itself draws nothing)."""
from __future__ import annotations

import torch

from wildhands.app.plots import prediction_overlays_figure
from wildhands.net.model import HandReconstructor
from wildhands.net.samples import InputSettings, heatmaps
from wildhands.net.train import predict_dataset


def show_predictions(model: HandReconstructor, dataset, config: dict, count: int = 8, noise: bool = False):
    """A figure of the first ``count`` samples with predictions overlaid on what the network saw.

    RGB variants show the crop; the 2D variant shows its heat-maps (summed) at the crop's size.
    """
    subset = torch.utils.data.Subset(dataset, range(min(count, len(dataset))))
    pred = predict_dataset(model, subset, config, noise=noise)
    inputs = InputSettings.from_config(config)
    crop = inputs.crop_size
    if "rgb" in model.variant:
        backgrounds = [subset[i]["image"] for i in range(len(subset))]
    else:
        sigma = inputs.heatmap_sigma * crop / inputs.input_size
        maps = heatmaps(torch.as_tensor(pred["input_keypoints_2d"]), None, crop, sigma, crop)
        backgrounds = maps.sum(1).clamp(max=1).numpy()
    titles = [f"{e:.1f} mm" for e in pred["mpjpe_3d_mm"]]
    return prediction_overlays_figure(backgrounds, pred["pred_keypoints_2d"], pred["keypoints_2d"],
                                      pred["pred_vertices_2d"], titles=titles)
