"""Hands matched across the frames of a video into tracks: a ``track_id`` and a side per hand.

Owns the association of per-frame detections (21 keypoints in image pixels and a side) with
the tracks alive so far; numpy only. Each track predicts where its hand is in the next frame
by constant velocity (the last two keypoint sets it saw, scaled by the frames between them),
and the detections of a frame are assigned to tracks by the lowest total cost (an exact
assignment over permutations; a frame holds a few hands):

    cost(track, hand) = mean_i |x_i - x_i^pred| / l  +  side_penalty [sides differ]

l the edge of the track's last tight box around its keypoints (``crops.crop_box`` at scale 1,
computed here in numpy). A pair costing more than ``gate`` is not matched: the hand starts a new
track. A track ends once its hand has been missing for more than ``max_missing`` frames. Its
side is the majority of the sides its detections gave, weighted by their scores (MediaPipe's
handedness flickers between frames; a hand's side does not).

Velocity prediction is what keeps two crossing hands apart: at the crossing both are near
both predictions by position alone, but each continues on its own course.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

SIDES = ("left", "right")


def hand_size(keypoints_2d: np.ndarray) -> float:
    """Edge of the tightest square box around (21, 2) keypoints (finite ones), pixels, at least 1."""
    pts = np.asarray(keypoints_2d, np.float64)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if not len(pts):
        return 1.0
    return max(float(np.ptp(pts, axis=0).max()), 1.0)


@dataclass
class Track:
    """One hand through time: the frames it was seen in and what it looked like there."""
    track_id: int
    frames: list = field(default_factory=list)       # frame indices with a detection
    keypoints: list = field(default_factory=list)    # (21, 2) per frame in ``frames``
    side_votes: dict = field(default_factory=lambda: {side: 0.0 for side in SIDES})
    first_side: str = ""                             # the side of its first detection (breaks ties)

    @property
    def last_frame(self) -> int:
        return self.frames[-1]

    @property
    def side(self) -> str:
        """The side most of its detections gave (score-weighted); ties go to the first one seen."""
        return max(SIDES, key=lambda s: (self.side_votes[s], s == self.first_side))

    def add(self, frame: int, keypoints_2d: np.ndarray, side: str, score: float = 1.0) -> None:
        if side not in SIDES:
            raise ValueError(f"side: expected one of {', '.join(SIDES)}, got {side!r}")
        if not self.frames:
            self.first_side = side
        self.frames.append(int(frame))
        self.keypoints.append(np.asarray(keypoints_2d, np.float64))
        self.side_votes[side] += max(float(score), 1e-3)

    def predict(self, frame: int) -> np.ndarray:
        """(21, 2) where its keypoints should be at ``frame``: constant velocity from the last two."""
        last = self.keypoints[-1]
        if len(self.frames) < 2:
            return last
        gap = max(self.frames[-1] - self.frames[-2], 1)
        velocity = (last - self.keypoints[-2]) / gap
        return last + velocity * (frame - self.frames[-1])


class HandTracker:
    """Frame-by-frame association: ``update(frame, keypoints, sides)`` -> a track id per hand.

    ``max_missing``: frames a track may go without its hand before it ends; ``gate``: the
    highest cost (mean keypoint distance in hand sizes, plus ``side_penalty``) a match may have.
    """

    def __init__(self, max_missing: int = 10, gate: float = 1.0, side_penalty: float = 0.3):
        if int(max_missing) != max_missing or max_missing < 0:
            raise ValueError(f"max_missing: expected an integer >= 0 (frames), got {max_missing!r}")
        if not gate > 0 or side_penalty < 0:
            raise ValueError(f"gate must be > 0 and side_penalty >= 0, got {gate!r}, {side_penalty!r}")
        self.max_missing, self.gate, self.side_penalty = int(max_missing), float(gate), float(side_penalty)
        self.active: list[Track] = []
        self.finished: list[Track] = []
        self._next_id = 0

    @property
    def tracks(self) -> list[Track]:
        """Every track so far, in the order they started."""
        return sorted(self.finished + self.active, key=lambda t: t.track_id)

    def update(self, frame: int, keypoints, sides, scores=None) -> list[int]:
        """Assign the hands of ``frame`` (a list of (21, 2) keypoint arrays and their sides) to
        tracks; returns their track ids, in the order given. Frames must come in increasing order."""
        keypoints = [np.asarray(k, np.float64) for k in keypoints]
        scores = [1.0] * len(keypoints) if scores is None else list(scores)
        if len(sides) != len(keypoints) or len(scores) != len(keypoints):
            raise ValueError(f"frame {frame}: {len(keypoints)} hands, {len(sides)} sides, {len(scores)} scores")
        self._end_stale(frame)
        pairs = self._assign(frame, keypoints, sides)
        ids = []
        for i, (points, side, score) in enumerate(zip(keypoints, sides, scores)):
            track = pairs.get(i)
            if track is None:
                track = Track(self._next_id)
                self._next_id += 1
                self.active.append(track)
            track.add(frame, points, side, score)
            ids.append(track.track_id)
        return ids

    def finish(self) -> list[Track]:
        """End every track (the video is over); returns all tracks."""
        self.finished += self.active
        self.active = []
        return self.tracks

    def _end_stale(self, frame: int) -> None:
        if self.active and frame <= max(t.last_frame for t in self.active):
            raise ValueError(f"frame {frame}: frames must come in increasing order")
        stale = [t for t in self.active if frame - t.last_frame - 1 > self.max_missing]  # frames missed
        self.finished += stale
        self.active = [t for t in self.active if t not in stale]

    def _assign(self, frame: int, keypoints: list, sides) -> dict:
        """{hand index: track} of the lowest total cost, pairs above the gate left out."""
        if not keypoints or not self.active:
            return {}
        cost = np.array([[self.cost(track, frame, points, side) for track in self.active]
                         for points, side in zip(keypoints, sides)])
        allowed = np.where(cost <= self.gate, cost, np.inf)
        best, best_total = {}, (0, 0.0)
        hands, tracks = range(len(keypoints)), range(len(self.active))
        for count in range(min(len(keypoints), len(self.active)), 0, -1):
            for chosen in itertools.combinations(hands, count):
                for order in itertools.permutations(tracks, count):
                    total = sum(allowed[h, t] for h, t in zip(chosen, order))
                    if np.isfinite(total) and (count, -total) > (best_total[0], -best_total[1]):
                        best, best_total = dict(zip(chosen, order)), (count, total)
            if best:
                break
        return {h: self.active[t] for h, t in best.items()}

    def cost(self, track: Track, frame: int, keypoints_2d: np.ndarray, side: str) -> float:
        """Mean keypoint distance to the track's prediction, in its hand sizes, plus the side penalty."""
        predicted = track.predict(frame)
        usable = np.isfinite(keypoints_2d).all(axis=1) & np.isfinite(predicted).all(axis=1)
        if not usable.any():
            return np.inf
        distance = np.linalg.norm(keypoints_2d[usable] - predicted[usable], axis=1).mean()
        return float(distance / hand_size(track.keypoints[-1]) + self.side_penalty * (side != track.side))


def track_frames(frames, max_missing: int = 10, gate: float = 1.0, side_penalty: float = 0.3):
    """Offline: ``frames`` a list, per frame, of hands (keypoints (21, 2), side[, score]) ->
    (track ids per frame, the finished ``Track`` list)."""
    tracker = HandTracker(max_missing, gate, side_penalty)
    ids = []
    for index, hands in enumerate(frames):
        ids.append(tracker.update(index, [h[0] for h in hands], [h[1] for h in hands],
                                  [h[2] if len(h) > 2 else 1.0 for h in hands]))
    return ids, tracker.finish()
