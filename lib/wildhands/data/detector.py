"""The independent 2D hand detector: MediaPipe Hands (0.10.21, models inside the wheel, CPU, offline).

The paper feeds 2D joint heat-maps from an independent CNN (OpenPose hand); we use MediaPipe.
``HandDetector.detect(image)`` returns, per hand, everything MediaPipe gives (nothing is
dropped): 21 keypoints in image pixels in our order (MediaPipe's landmark order is the OpenPose
order), their relative depth, the 3D world landmarks (metres, centred on the hand: x right, y down,
z away, of the hand as seen along the ray to it, since MediaPipe reads them from the hand's crop
alone; ``camera.world_landmarks_in_camera`` turns them into the camera's frame), the hand's side
in an ordinary photograph and MediaPipe's handedness score. MediaPipe labels handedness as if the image were a mirrored selfie,
so its label is swapped. MediaPipe gives no per-keypoint confidence; this module estimates one
per photo from how much its passes disagree (``KeypointSigmaRule``).

Passes, all with one ``Hands`` object in static-image mode, except pass 3's flipped crop, which a
second one reads in a worker thread while the first reads the crop (``parallel_passes``: MediaPipe
runs a graph on one core, and the two crops are independent; 29 against 52 ms per hand on 2 cores):

1. the whole photo (downscaled to ``MAX_DETECTION_SIDE`` if larger);
2. when pass 1 finds nothing, or only hands smaller than ``SMALL_HAND`` of the photo's longer
   side (people seen whole, whose other hand MediaPipe's palm detector often misses): 3 x 3
   overlapping tiles of half the longer side, which the palm detector sees at twice the
   scale. A hand cut by a tile's inner edge is dropped (a neighbouring tile holds it whole);
   a hand found more than once (box centres closer than half the larger l) is kept once,
   the highest score winning. When those tiles find nothing either, finer tiles
   (``TILE_LEVELS``: 1/4, then 1/6 of the longer side, overlapping by half, at least
   ``MIN_FINE_TILE_SIDE`` px), each level only when the coarser ones found nothing: the palm
   detector reads hands of about a tenth of its view and more, so a 20 px hand needs a view of
   about 200 px. A hand of these finer levels is kept only when a second view (pass 3's crops)
   finds it again: single readings there are where MediaPipe imagines hands in textures. The
   16-32 px hands these levels still miss mostly sit at the palm detector's lower limit there:
   their palm fires weakly (under the threshold) or the landmark pass rejects the blur it reads
   (measured per miss on the composites). So on the finest level's tiles the palm detector reads
   from ``PROPOSAL_SCORE`` on and reports its detections, and when no level finds a hand, the
   strongest of them (``MAX_PROPOSALS``) are read again on windows ``ZOOM`` times smaller than
   that level's tiles (``zoom_windows``), each hand found there kept when a second view confirms it;
3. per hand, the 2.2 l crop around its keypoints at 320 pixels, and the same crop flipped
   left-right (``second_pass``): the hand fills the crop as it fills the network's input. For
   a small hand that crop is a magnified blur (a 20 px hand magnified 7 times) where the palm
   detector often sees nothing; then, for hands found by the tiles or the body pass, that pass
   is read again on a window of the photo at its own resolution (``NATIVE_VIEW_SIDE`` px, or
   2.2 l when larger), then on one of ``CONTEXT_VIEW`` l (``refine_views``). A
   crop pass counts when it finds the same hand at a size within 2/3 to 3/2 of the first
   (MediaPipe sometimes sees a small hand inside a fist on a crop). The hand's keypoints and
   world landmarks become the mean over the passes that found it (the flipped pass mapped
   back), and each keypoint's uncertainty sigma follows from the passes' spread:

       sigma_i = min(sigma_max, sqrt(sigma_floor^2 + (gain * spread_i)^2))   px at 320 per axis

   spread_i the per-axis sample standard deviation of keypoint i over the passes (px of the
   320 crop of 2.2 l). ``sigma_floor``, ``gain`` and ``sigma_max`` come from the file the
   profile's ``[detector] sigma_rule`` names, measured by ``benchmarks/bench_detector.py
   --write-sigma`` (MediaPipe against the labelled calibration photos). A hand that only one
   pass found has no sigma (None): callers fall back to the global noise model;
4. the body pass (``body_finder``), only on photos where passes 1 and 2 found nothing or only
   small hands (people seen whole or far away): MediaPipe Pose finds the people, and each arm
   whose wrist is visible but holds no hand found so far has its hand searched on a crop built
   from the arm (``found_by = "body"``). Photos where a hand of ordinary size was found never
   pay for it.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildhands.config import setting, table
from wildhands.data.body_finder import MAX_CROP_UPSAMPLING, NATIVE_VIEW_SIDE, BodyFinder, BodySettings
from wildhands.data.crops import crop_box, crop_image, make_transform
from wildhands.data.detection import Detection, swap_handedness, tight_box
from wildhands.data.images import check_image
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import CROP_SCALE, CROP_SIZE
from wildhands.paths import PROJECT_ROOT

SECOND_PASS_SIZE = CROP_SIZE      # the refinement pass sees the paper's 2.2 l crop at 320 px
SECOND_PASS_SCALE = CROP_SCALE
MAX_DETECTION_SIDE = 1920   # larger photos are downscaled for pass 1 (coordinates mapped back)
MIN_TILE_SIDE = 64          # photos whose tiles would be smaller are not tiled
SMALL_HAND = 1 / 8          # hands with l under this fraction of the longer side send the photo to tiles
# Tile levels (pass 2), as divisions of the longer side, each searched only when the levels before it
# found nothing: 2, the 3 x 3 tiles of half the side; finer ones overlap by half and keep a hand
# only when a second view confirms it. Measured by benchmarks/bench_detector.py --composites.
TILE_LEVELS = (2, 4, 6)
# Finer tiles smaller than this are not searched: MediaPipe magnifies them to its palm detector's 192 px
# view, and there it took textures for hands (a flag's stars and a building's windows, 85-150 px tiles of
# the 512-600 px photos of people that scikit-image and matplotlib ship).
MIN_FINE_TILE_SIDE = 160
# Palm proposals (pass 2's finest tiles): the palm detector's detections there from PROPOSAL_SCORE on (under the
# hand pass's own threshold, or where the landmark pass rejected the hand) are read again, when no level found a
# hand, on windows of 1/ZOOM of the finest tile's side around the MAX_PROPOSALS strongest: a 16-32 px hand sits at
# the palm detector's lower limit in the finest tiles (its palm fires weakly, its landmarks read a blur), and ZOOM
# times larger in the window. Chosen on the rendered tuning set (benchmarks/bench_detector.py --composites
# --rendered): ZOOM 1.5 and 2 found the same hands; 16 proposals one more than 8.
PROPOSAL_SCORE = 0.1
ZOOM = 1.5
MAX_PROPOSALS = 16
# A small hand's views in pass 3 (``refine_views``) also include a window of CONTEXT_VIEW l at the photo's
# resolution: the hand a fifth of the view, where the palm detector reads it best (the 2.2 l crop magnifies a
# 20 px hand 7 times; the NATIVE_VIEW_SIDE window shows it at a tenth). Chosen on the rendered tuning set.
CONTEXT_VIEW = 5.0
FOUND_BY = ("hand", "tile", "body")  # the pass that found a hand: the whole photo, a tile, a person's arm
PASSES = ("first", "crop", "flipped")
DEFAULT_SIGMA_RULE = "params/detector_sigma.json"  # the measured KeypointSigmaRule (bench_detector.py --write-sigma)


def detections_from_result(result, width: int, height: int, found_by: str = "hand") -> list[Detection]:
    """MediaPipe's result (normalised landmarks, their z, world landmarks, handedness) ->
    ``Detection``s in pixels of a ``width`` x ``height`` image (pixel centres at integers).

    MediaPipe's z has the scale of its x (a fraction of the image width), so depth in pixels is
    z * width. World landmarks are kept as given (metres, origin at the hand's centre).
    """
    if found_by not in FOUND_BY:
        raise ValueError(f"found_by: expected one of {', '.join(FOUND_BY)}, got {found_by!r}")
    landmark_sets = result.multi_hand_landmarks or []
    worlds = getattr(result, "multi_hand_world_landmarks", None) or [None] * len(landmark_sets)
    hands = []
    for landmarks, handedness, world in zip(landmark_sets, result.multi_handedness or [], worlds):
        pts = np.array([[lm.x * width - 0.5, lm.y * height - 0.5] for lm in landmarks.landmark])
        depth = np.array([getattr(lm, "z", np.nan) * width for lm in landmarks.landmark])
        depth = depth - depth[kp.ROOT] if np.isfinite(depth).all() else None
        world_m = None if world is None else np.array([[lm.x, lm.y, lm.z] for lm in world.landmark])
        label = handedness.classification[0]
        hands.append(Detection(pts, swap_handedness(label.label), float(label.score), tight_box(pts),
                               world_landmarks=world_m, depth=depth, passes={"first": pts}, found_by=found_by))
    return hands


def same_hand(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two (21, 2) keypoint sets are one hand: box centres closer than half the larger l."""
    (ax, ay, al), (bx, by, bl) = crop_box(a, None, 1.0), crop_box(b, None, 1.0)
    return float(np.hypot(ax - bx, ay - by)) < 0.5 * max(al, bl)


def merge_detections(detections: list[Detection], limit: int) -> list[Detection]:
    """At most ``limit`` hands, highest score first, each found hand once."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: -d.score):
        if not any(same_hand(other.keypoints_2d, det.keypoints_2d) for other in kept):
            kept.append(det)
    return kept[:limit]


class HandDetector:
    """MediaPipe Hands in static-image mode, one ``Hands`` graph per instance (not thread-safe).

    ``max_num_hands``: hands per image at most; ``min_detection_confidence``: MediaPipe's palm
    detection threshold; ``second_pass``: refine each hand on its 2.2 l crop and the flipped
    crop; ``tiles``: search tiles when the whole photo gives nothing or only small hands (pass 2);
    ``sigma``: the per-keypoint uncertainty rule (default: the measured one); ``body``: the body
    pass (pass 4) with these ``body_finder.BodySettings`` (None: off); ``tile_levels``: pass 2's
    levels (``TILE_LEVELS``; ``(2,)``: the half-side tiles only); ``native_view``: passes 3 and 4
    read a small hand found by the tiles or the body pass again at the photo's resolution when
    their magnified crops show nothing; ``proposals``: pass 2's finest tiles report the palm
    detector's weaker detections, read again on zoomed windows when no tile finds a hand;
    ``context_view``: pass 3 also reads such a small hand on a window of ``CONTEXT_VIEW`` l;
    ``parallel_passes``: pass 3's flipped crop read by a second graph in a worker thread (the same
    detections, sooner). Use as a context manager, or call ``close()``.
    """

    def __init__(self, max_num_hands: int = 4, min_detection_confidence: float = 0.3, second_pass: bool = True,
                 tiles: bool = True, sigma: "KeypointSigmaRule | None" = None, body=None,
                 tile_levels=TILE_LEVELS, native_view: bool = True, proposals: bool = True,
                 context_view: bool = True, parallel_passes: bool = True):
        import mediapipe as mp

        if int(max_num_hands) != max_num_hands or max_num_hands < 1:
            raise ValueError(f"max_num_hands: expected a positive integer, got {max_num_hands}")
        levels = tuple(tile_levels)
        if not levels or levels[0] != 2 or any(int(n) != n for n in levels) or list(levels) != sorted(set(levels)):
            raise ValueError(f"tile_levels: expected increasing integer divisions of the photo's longer side "
                             f"starting at 2, got {tile_levels}")
        self.tile_levels, self.native_view = tuple(int(n) for n in levels), bool(native_view)
        if not 0.0 <= min_detection_confidence <= 1.0:
            raise ValueError(f"min_detection_confidence: expected a value in [0, 1], got {min_detection_confidence}")
        self.max_num_hands = int(max_num_hands)
        self.second_pass, self.tiles = bool(second_pass), bool(tiles)
        self.sigma = sigma or sigma_rule_from_file(DEFAULT_SIGMA_RULE)
        def hand_graph():
            return mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=self.max_num_hands,
                                            min_detection_confidence=float(min_detection_confidence),
                                            model_complexity=1)

        self._hands = hand_graph()
        # pass 3's flipped crop: its own graph (a graph is not thread-safe) and the thread that runs it
        self._flipped_hands, self._worker = None, None
        if self.second_pass and parallel_passes:
            self._flipped_hands, self._worker = hand_graph(), ThreadPoolExecutor(1, "wildhands-flipped-pass")
        # the finest tiles' hand graph: its palm detector reads from PROPOSAL_SCORE on and reports (``proposals``)
        self.proposals, self.context_view = bool(proposals), bool(context_view)
        self._palms = (_palm_hands(self.max_num_hands, min(PROPOSAL_SCORE, float(min_detection_confidence)))
                       if self.proposals else None)
        self._body = None
        if body is not None:
            self._body = BodyFinder(body)

    @property
    def body(self):
        """The body pass's ``body_finder.BodySettings`` (None: the pass is off)."""
        return None if self._body is None else self._body.settings

    def close(self) -> None:
        if getattr(self, "_worker", None) is not None:
            self._worker.shutdown()
            self._worker = None
        for name in ("_hands", "_flipped_hands"):
            if getattr(self, name, None) is not None:
                getattr(self, name).close()
                setattr(self, name, None)
        if getattr(self, "_palms", None) is not None:
            self._palms.close()
            self._palms = None
        if self._body is not None:
            self._body.close()
            self._body = None

    def __enter__(self) -> "HandDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detect(self, image_rgb) -> list[Detection]:
        """All hands in an RGB image, at most ``max_num_hands``.

        ``image_rgb`` (H, W, 3) uint8; (H, W) grayscale and (H, W, 4) RGBA are converted (alpha
        dropped), floats in [0, 1] scaled; sides under 16 pixels are an error. Photos larger
        than ``MAX_DETECTION_SIDE`` are searched downscaled, refined at full resolution.
        """
        if self._hands is None:
            raise RuntimeError("HandDetector: detect() after close()")
        image = check_image(image_rgb, "image_rgb")
        factor = min(1.0, MAX_DETECTION_SIDE / max(image.shape[:2]))
        small = image if factor == 1.0 else _resize(image, factor)
        found = self._run(small)
        if self.tiles and _needs_tiles(found, small.shape):
            longest = max(small.shape[:2])
            levels = [parts for level, parts in enumerate(self.tile_levels)
                      if not level or longest // parts >= MIN_FINE_TILE_SIDE]
            proposals = []
            for level, parts in enumerate(levels):
                if level and found:
                    break
                # the finest level's palm detections are proposals, read again zoomed if no level finds a hand
                finest = level == len(levels) - 1 and level and self.proposals
                hands = self._tiled(small, parts, proposals if finest else None)
                if level:   # finer tiles: a hand only when a second view sees it too
                    hands = self._confirmed(small, hands)
                found = merge_detections(found + hands, self.max_num_hands)
            if not found and proposals:
                zoomed = self._zoomed(small, proposals, longest // levels[-1] / ZOOM)
                found = merge_detections(self._confirmed(small, zoomed), self.max_num_hands)
        # only photos whose hands are all small (or absent) can hold people seen whole
        people_likely = _needs_tiles(found, small.shape)
        found = [d.mapped(lambda p: (p + 0.5) / factor - 0.5, 1.0 / factor) for d in found]
        if self._body is not None and people_likely and len(found) < self.max_num_hands:
            body = self._body.find_hands(image, found, self._run, native_view=self.native_view)
            found = merge_detections(found + body, self.max_num_hands)
        if self.second_pass:   # hands confirmed on finer tiles hold their crop passes already
            found = [d if d.low_confidence or len(d.passes) > 1 else self._refine(image, d) for d in found]
        return found

    def _run(self, image: np.ndarray, found_by: str = "hand", graph=None) -> list[Detection]:
        result = (graph or self._hands).process(np.ascontiguousarray(image))
        return detections_from_result(result, image.shape[1], image.shape[0], found_by)

    def _run_palms(self, image: np.ndarray, found_by: str = "tile") -> tuple[list[Detection], list[tuple]]:
        """The hand pass of the finest tiles, its palm detector reading from ``PROPOSAL_SCORE`` on (a
        hand it finds is still kept only when a second view confirms it): its hands, and its palm
        detections as (cx, cy, side, score) in view pixels (``palm_proposals``)."""
        h, w = image.shape[:2]
        result = self._palms.process(np.ascontiguousarray(image))
        return detections_from_result(result, w, h, found_by), palm_proposals(result, w, h)

    def _confirmed(self, image: np.ndarray, hands: list[Detection]) -> list[Detection]:
        """The hands that a second view (pass 3's crops) finds again, refined by it."""
        return [h for h in (self._refine(image, h) for h in hands) if len(h.passes) > 1]

    def _zoomed(self, image: np.ndarray, proposals: list[tuple], side: float) -> list[Detection]:
        """The hands read on windows of ``side`` px around the strongest palm proposals
        (``zoom_windows``), found whole in them."""
        found = []
        for transform in zoom_windows(image.shape, proposals, side):
            view = crop_image(image, transform)
            found += [d.mapped(transform.to_image, 1.0 / transform.zoom) for d in self._run(view, "tile")
                      if not _touches(d.keypoints_2d, view.shape, (True,) * 4)]
        return merge_detections(found, len(found))

    def _refine(self, image: np.ndarray, det: Detection) -> Detection:
        """Pass 3: the hand found again on its 2.2 l crop and on that crop flipped; the passes
        that show it are averaged and their spread gives each keypoint's sigma."""
        box = crop_box(det.keypoints_2d, None, SECOND_PASS_SCALE)
        # a hand the whole photo showed is refined as it always was (no cost on such photos)
        native = self.native_view and det.found_by != "hand"
        flipped = (self._worker.submit(self._crop_pass, image, det, box, True, native, self._flipped_hands)
                   if self._worker is not None else None)
        views = {"crop": self._crop_pass(image, det, box, False, native),
                 "flipped": flipped.result() if flipped else self._crop_pass(image, det, box, True, native)}
        return combine_passes(det, {name: view for name, view in views.items() if view is not None}, self.sigma)

    def _crop_pass(self, image: np.ndarray, det: Detection, box, mirror: bool, native: bool,
                   graph=None) -> Detection | None:
        """The hand ``det`` seen again on the first of its ``refine_views`` that shows it (None: none does)."""
        for transform in refine_views(image.shape, box, mirror, native, self.context_view):
            for candidate in self._run(crop_image(image, transform), graph=graph):
                seen = candidate.mapped(transform.to_image, 1.0 / transform.zoom, mirrored=mirror)
                if _same_hand_and_size(det.keypoints_2d, seen.keypoints_2d):
                    return seen
        return None

    def _tiled(self, image: np.ndarray, parts: int = 2, proposals: list | None = None) -> list[Detection]:
        """Pass 2: the hands found whole on overlapping tiles of 1/``parts`` of the longer side
        (``tile_origins``), each found hand once. With a ``proposals`` list, the tiles are read by
        the palm-proposing graph and all their palm detections are appended to it as (cx, cy, score),
        image pixels.

        A hand cut by a tile's inner edge gives MediaPipe a partial view and wrong keypoints;
        its neighbouring tiles hold it whole (the tiles overlap by half), so it is dropped.
        """
        h, w = image.shape[:2]
        size = max(h, w) // parts
        if size < MIN_TILE_SIDE:
            return []
        found = []
        for y0 in tile_origins(h, size):
            for x0 in tile_origins(w, size):
                tile = image[y0:y0 + size, x0:x0 + size]
                inner = (x0 > 0, y0 > 0, x0 + tile.shape[1] < w, y0 + tile.shape[0] < h)
                if proposals is None:
                    hands = self._run(tile, "tile")
                else:
                    hands, palms = self._run_palms(tile, "tile")
                    proposals += [(cx + x0, cy + y0, score) for cx, cy, _, score in palms]
                found += [d.mapped(lambda p, o=(x0, y0): p + o, 1.0) for d in hands
                          if not _touches(d.keypoints_2d, tile.shape, inner)]
        return merge_detections(found, len(found))


def tile_origins(length: int, size: int) -> list[int]:
    """Tile origins along a side of ``length`` px for tiles of ``size``: evenly spaced from 0 to
    ``length - size``, at least 3 and as many as keep neighbours overlapping by half a tile."""
    if length <= size:
        return [0]
    count = max(3, int(np.ceil(2 * (length - size) / size)) + 1)
    return sorted({int(v) for v in np.linspace(0, length - size, count)})


def palm_proposals(result, width: int, height: int) -> list[tuple]:
    """MediaPipe's palm detections (``palm_detections`` of the hand graph) as (cx, cy, side, score)
    in pixels of a ``width`` x ``height`` view: the box's centre and its longer side."""
    out = []
    for detection in getattr(result, "palm_detections", None) or []:
        box = detection.location_data.relative_bounding_box
        out.append(((box.xmin + box.width / 2) * width - 0.5, (box.ymin + box.height / 2) * height - 0.5,
                    max(box.width * width, box.height * height), float(detection.score[0])))
    return out


def zoom_windows(image_shape, proposals, side: float, limit: int | None = None) -> list:
    """The windows (``CropTransform``s at the photo's resolution) of ``side`` px around the ``limit``
    (default ``MAX_PROPOSALS``) strongest palm proposals (cx, cy, score);
    a proposal whose centre lies within a quarter window of a stronger one's shares its window."""
    limit = MAX_PROPOSALS if limit is None else limit
    windows, centres = [], []
    for cx, cy, _ in sorted(proposals, key=lambda p: -p[2]):
        if any(np.hypot(cx - x, cy - y) < 0.25 * side for x, y in centres):
            continue
        centres.append((cx, cy))
        windows.append(make_transform(image_shape, (cx, cy, side), max(1, round(side))))
        if len(windows) >= limit:
            break
    return windows


def _palm_hands(max_num_hands: int, min_detection_confidence: float):
    """MediaPipe Hands (static images, the full models, inside the wheel) whose palm detector reports
    from ``min_detection_confidence`` on, and which also returns those palm detections
    (``process(image).palm_detections``, the hand graph's own output stream)."""
    from mediapipe.python.solution_base import SolutionBase

    return SolutionBase(
        binary_graph_path="mediapipe/modules/hand_landmark/hand_landmark_tracking_cpu.binarypb",
        side_inputs={"model_complexity": 1, "num_hands": int(max_num_hands), "use_prev_landmarks": False},
        calculator_params={"palmdetectioncpu__TensorsToDetectionsCalculator.min_score_thresh":
                           float(min_detection_confidence),
                           "handlandmarkcpu__ThresholdingCalculator.threshold": 0.5},   # MediaPipe's default
        outputs=["multi_hand_landmarks", "multi_hand_world_landmarks", "multi_handedness", "palm_detections"])


def refine_views(image_shape, box, mirror: bool, native_view: bool = True, context_view: bool = True) -> list:
    """Pass 3's views of one hand (``box`` = (cx, cy, 2.2 l)), in the order tried: the crop at
    ``SECOND_PASS_SIZE`` px; when that magnifies the photo more than ``MAX_CROP_UPSAMPLING`` and
    ``native_view``, a window of ``NATIVE_VIEW_SIDE`` px (or the box, when larger) at the photo's
    own resolution, and with ``context_view`` one of ``CONTEXT_VIEW`` l."""
    views = [make_transform(image_shape, box, SECOND_PASS_SIZE, mirror=mirror)]
    if native_view and views[0].zoom > MAX_CROP_UPSAMPLING:
        side = max(float(box[2]), float(NATIVE_VIEW_SIDE))
        views.append(make_transform(image_shape, (box[0], box[1], side), round(side), mirror=mirror))
        if context_view:
            side = CONTEXT_VIEW * float(box[2]) / SECOND_PASS_SCALE
            views.append(make_transform(image_shape, (box[0], box[1], side), max(1, round(side)), mirror=mirror))
    return views


def _same_hand_and_size(first: np.ndarray, other: np.ndarray) -> bool:
    ratio = crop_box(other, None, 1.0)[2] / crop_box(first, None, 1.0)[2]
    return same_hand(first, other) and 2 / 3 < ratio < 3 / 2


@dataclass(frozen=True)
class KeypointSigmaRule:
    """Per-keypoint uncertainty of one photo from the disagreement of the detector's passes.

    sigma_i = min(sigma_max_px, sqrt(sigma_floor_px^2 + (gain * spread_i)^2)), in pixels of the
    320 crop of 2.2 l per axis; spread_i the per-axis sample standard deviation of keypoint i
    over the passes. Measured values: ``DEFAULT_SIGMA_RULE`` (``sigma_rule_from_file``).
    """
    sigma_floor_px: float
    gain: float
    sigma_max_px: float

    def __post_init__(self):
        if not (self.sigma_floor_px > 0 and self.gain >= 0 and self.sigma_max_px >= self.sigma_floor_px):
            raise ValueError(f"[detector] sigma rule: expected sigma_floor_px > 0, gain >= 0 and sigma_max_px >= "
                             f"sigma_floor_px, got {self.sigma_floor_px}, {self.gain}, {self.sigma_max_px}")

    def __call__(self, spread_px: np.ndarray) -> np.ndarray:
        spread = np.asarray(spread_px, np.float64)
        return np.minimum(self.sigma_max_px, np.hypot(self.sigma_floor_px, self.gain * spread))


def pass_spread(points: list[np.ndarray]) -> np.ndarray:
    """(21,) per-axis sample standard deviation of each keypoint over two or more passes (21, 2)."""
    stack = np.stack(points)
    if len(stack) < 2:
        raise ValueError(f"pass_spread: needs at least 2 passes, got {len(stack)}")
    squared = np.square(stack - stack.mean(0)).sum(axis=(0, 2))          # over passes and both axes
    return np.sqrt(squared / (2 * (len(stack) - 1)))


def combine_passes(first: Detection, views: dict, rule: KeypointSigmaRule) -> Detection:
    """One detection from the first pass and the crop passes (``views``: name -> ``Detection`` in
    image pixels) that found the same hand: mean keypoints, world landmarks and depth, the
    passes' keypoints kept, and sigma from their spread (None when one pass only)."""
    found = [first] + [views[name] for name in PASSES[1:] if name in views]
    passes = {"first": first.keypoints_2d, **{name: views[name].keypoints_2d for name in PASSES[1:] if name in views}}
    points = list(passes.values())
    if len(points) < 2:
        return first.moved(first.keypoints_2d, passes=passes)
    mean = np.mean(points, axis=0)
    l_px = crop_box(mean, None, SECOND_PASS_SCALE)[2]
    to_crop = SECOND_PASS_SIZE / l_px
    sigma = rule(pass_spread(points) * to_crop) / to_crop

    def average(key):
        values = [getattr(d, key) for d in found if getattr(d, key) is not None]
        return np.mean(values, axis=0) if values else None

    return first.moved(mean, world_landmarks=average("world_landmarks"), depth=average("depth"), sigma_px=sigma,
                       passes=passes)


def _touches(points: np.ndarray, shape, inner) -> bool:
    """Whether a hand reaches within a tenth of its size l of one of a tile's ``inner``
    (left, top, right, bottom) edges."""
    margin = 0.1 * crop_box(points, None, 1.0)[2]
    low, high = points.min(axis=0) - margin, points.max(axis=0) + margin
    limits = (low[0] < 0, low[1] < 0, high[0] > shape[1] - 1, high[1] > shape[0] - 1)
    return any(edge and beyond for edge, beyond in zip(inner, limits))


def _needs_tiles(found: list[Detection], shape) -> bool:
    longest = max(shape[:2])
    return not found or max(crop_box(d.keypoints_2d, None, 1.0)[2] for d in found) < SMALL_HAND * longest


def _resize(image: np.ndarray, factor: float) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)


DETECTOR_SETTINGS = ("max_num_hands", "min_detection_confidence", "second_pass", "tiles")
BODY_PREFIX = "body_"   # [detector] body = true turns pass 4 on; body_<name> sets BodySettings.<name>
SIGMA_SETTINGS = ("sigma_floor_px", "gain", "sigma_max_px")


def detector_from_config(config: dict) -> HandDetector:
    """The detector a profile's ``[detector]`` table describes: ``DETECTOR_SETTINGS``, ``sigma_rule`` (a
    file, or "": the detector's own rule) and ``body``; with ``body`` true, every ``body_<name>`` of
    ``BodySettings``. A missing key is a ``config.MissingSetting`` naming it."""
    from dataclasses import fields

    section = table(config, "detector")
    known = {f.name for f in fields(BodySettings)}
    body_keys = {key[len(BODY_PREFIX):] for key in section if key.startswith(BODY_PREFIX)}
    unknown = sorted(body_keys - known)
    if unknown:
        raise ValueError(f"[detector]: unknown body-pass settings {', '.join(BODY_PREFIX + k for k in unknown)}; "
                         f"known: {', '.join(BODY_PREFIX + k for k in sorted(known))}")
    body = None
    if setting(config, "detector", "body"):
        body = BodySettings(**{name: setting(config, "detector", BODY_PREFIX + name) for name in sorted(known)})
    rule = setting(config, "detector", "sigma_rule")
    return HandDetector(**{key: setting(config, "detector", key) for key in DETECTOR_SETTINGS},
                        sigma=sigma_rule_from_file(rule) if rule else None, body=body)


def sigma_rule_from_file(path) -> KeypointSigmaRule:
    """The ``KeypointSigmaRule`` measured into a JSON file (``benchmarks/bench_detector.py
    --write-sigma``): its ``rule`` holds sigma_floor_px, gain and sigma_max_px. Relative paths
    are from the project root."""
    path = Path(path) if Path(path).is_absolute() else PROJECT_ROOT / path
    try:
        rule = json.loads(path.read_text())["rule"]
        return KeypointSigmaRule(**{key: float(rule[key]) for key in SIGMA_SETTINGS})
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"[detector] sigma_rule: {path} is not a sigma-rule file with 'rule': "
                         f"{{{', '.join(SIGMA_SETTINGS)}}} ({err!r})") from None


# ----------------------------------------------------------------------------- measuring it

def keypoint_errors_at_crop(predicted, labels, visible=None, crop_scale: float = CROP_SCALE,
                            crop_size: int = CROP_SIZE) -> np.ndarray:
    """Per-keypoint distances (21,) between two sets of image keypoints, in pixels of the 320 crop
    of 2.2 l around the labelled hand (the unit the network sees); NaN where not visible."""
    labels = kp.check_keypoints(labels, "labels")[..., :2]
    predicted = kp.check_keypoints(predicted, "predicted")[..., :2]
    size = crop_box(labels, visible, crop_scale)[2]
    errors = np.linalg.norm(predicted - labels, axis=-1) * crop_size / size
    if visible is not None:
        errors = np.where(np.asarray(visible) > 0, errors, np.nan)
    return errors


def match_detection(detections: list[Detection], keypoints_2d, visible=None) -> Detection | None:
    """The detection of the labelled hand (smallest median keypoint distance), or None when
    none lies within half the labelled hand's size l."""
    labels = kp.check_keypoints(keypoints_2d, "keypoints_2d")[..., :2]
    vis = np.ones(kp.NUM_KEYPOINTS, bool) if visible is None else np.asarray(visible) > 0
    if not detections:
        return None
    distance = [float(np.median(np.linalg.norm(d.keypoints_2d - labels, axis=1)[vis])) for d in detections]
    best = int(np.argmin(distance))
    return detections[best] if distance[best] < 0.5 * crop_box(labels, vis, 1.0)[2] else None


def detection_report(detector: HandDetector, images, keypoints_2d, visible=None, sides=None) -> dict:
    """MediaPipe against labelled hands: detection and miss rates, handedness accuracy where
    ``sides`` are known, per-keypoint errors in pixels of the 320 crop of 2.2 l around each
    labelled hand (mean, median, 90th percentile over detected hands), and the matched
    ``detections`` (None: missed) for figures."""
    errors, found, side_ok, side_known = [], [], 0, 0
    for i, image in enumerate(images):
        vis = None if visible is None else visible[i]
        det = match_detection(detector.detect(image), keypoints_2d[i], vis)
        found.append(det)
        errors.append(np.full(kp.NUM_KEYPOINTS, np.nan) if det is None
                      else keypoint_errors_at_crop(det.keypoints_2d, keypoints_2d[i], vis))
        if det is not None and sides is not None and sides[i]:
            side_known += 1
            side_ok += det.handedness == sides[i]
    errors = np.array(errors).reshape(-1, kp.NUM_KEYPOINTS)
    detected = int(sum(d is not None for d in found))
    hit = errors[[d is not None for d in found]]

    def stat(f):
        return np.round(f(hit), 2).tolist() if len(hit) else [None] * kp.NUM_KEYPOINTS

    return {
        "hands": len(found), "detected": detected,
        "miss_rate": 1.0 - detected / len(found) if found else None,
        "handedness_correct": [side_ok, side_known],
        "median_px": float(np.nanmedian(hit)) if len(hit) else None,
        "mean_px": float(np.nanmean(hit)) if len(hit) else None,
        "per_keypoint": {"names": list(kp.KEYPOINT_NAMES),
                         "mean_px": stat(lambda e: np.nanmean(e, axis=0)),
                         "median_px": stat(lambda e: np.nanmedian(e, axis=0)),
                         "p90_px": stat(lambda e: np.nanpercentile(e, 90, axis=0))},
        "detections": found,
    }


def sigma_pairs(detections, keypoints_2d, visible=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per visible keypoint of the matched detections that have a sigma: the passes' spread and the
    estimated sigma (both px at the 320 crop of 2.2 l around the detection) and the true error
    (px at the 320 crop of 2.2 l around the labelled hand). ``detections``: one (or None) per hand."""
    spreads, sigmas, errors = [], [], []
    for i, det in enumerate(detections):
        if det is None or det.sigma_px is None:
            continue
        vis = None if visible is None else visible[i]
        to_crop = SECOND_PASS_SIZE / crop_box(det.keypoints_2d, None, SECOND_PASS_SCALE)[2]
        error = keypoint_errors_at_crop(det.keypoints_2d, keypoints_2d[i], vis)
        keep = np.isfinite(error)
        spreads.append(pass_spread(list(det.passes.values()))[keep] * to_crop)
        sigmas.append(det.sigma_px[keep] * to_crop)
        errors.append(error[keep])
    if not errors:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    return np.concatenate(spreads), np.concatenate(sigmas), np.concatenate(errors)


def fit_sigma_rule(spread_px, errors_px, outlier_fraction: float = 0.05, outlier_range_px: float = 100.0
                   ) -> KeypointSigmaRule:
    """The ``KeypointSigmaRule`` under which measured keypoint errors are most likely.

    Each Euclidean error e is Rayleigh-distributed with the rule's sigma (an isotropic 2D Gaussian
    keypoint), mixed with ``outlier_fraction`` of errors uniform over [0, ``outlier_range_px``]
    (hallucinated keypoints, other annotation conventions), so that a few wild keypoints do not
    set the rule. Maximum likelihood over a grid of floor, gain and cap (px at 320).
    """
    spread, error = np.asarray(spread_px, float), np.asarray(errors_px, float)
    if spread.shape != error.shape or spread.ndim != 1 or len(spread) < 10:
        raise ValueError(f"fit_sigma_rule: expected two equal 1-D arrays of at least 10 keypoints, got "
                         f"{spread.shape} and {error.shape}")
    best, best_ll = None, -np.inf
    for floor in np.arange(1.0, 15.01, 0.25):
        for gain in np.arange(0.0, 10.01, 0.25):
            for cap in (10.0, 15.0, 20.0, 30.0, 50.0):
                if cap < floor:
                    continue
                sigma = np.minimum(cap, np.hypot(floor, gain * spread))
                rayleigh = error / sigma**2 * np.exp(-0.5 * (error / sigma) ** 2)
                ll = np.log((1 - outlier_fraction) * rayleigh + outlier_fraction / outlier_range_px).sum()
                if ll > best_ll:
                    best, best_ll = (floor, gain, cap), ll
    return KeypointSigmaRule(*(float(v) for v in best))
