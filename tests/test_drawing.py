"""Overlays: the skeleton follows the hand's size, so small hands stay visible."""
import numpy as np

from wildhands.app.drawing import draw_skeleton, skeleton_sizes


def _hand(centre, size):
    angles = np.linspace(-2.4, -0.7, 5)
    points = [centre]
    for a in angles:
        for j in range(1, 5):
            points.append([centre[0] + np.cos(a) * size * j / 4, centre[1] + np.sin(a) * size * j / 4])
    return np.array(points, float)


def test_skeleton_sizes_follow_the_hand():
    (small_line, small_dot), (big_line, big_dot) = skeleton_sizes(30), skeleton_sizes(600)
    assert small_line == 1 and small_dot < 1 and big_line > 1 and big_dot > 2 * small_dot
    # A 30-pixel hand keeps most of its pixels: the dots no longer cover it.
    image = np.full((120, 120, 3), 90, np.uint8)
    drawn = draw_skeleton(image, _hand((60, 90), 30))
    changed = (drawn != image).any(-1)
    box = changed[55:95, 25:95]
    assert 0 < box.mean() < 0.35
    big = draw_skeleton(np.full((800, 800, 3), 90, np.uint8), _hand((400, 700), 600))
    assert (big != 90).any(-1).sum() > 20 * changed.sum()
