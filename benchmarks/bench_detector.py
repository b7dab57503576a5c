"""MediaPipe against the labelled real photos: detection rate, handedness, per-keypoint error, speed.

    python benchmarks/bench_detector.py [--photos ../shared/real_photos] [--write params/detector_noise.json]
                                        [--write-sigma params/detector_sigma.json]

Errors are in pixels of the 320 crop of 2.2 l around the labelled hand (the unit the network
sees; 1 px there is l / 145). With ``--write``, the per-keypoint statistics go to the JSON
file the training code reads to make synthetic heat-maps look like the detector's
(``inputs.DetectorNoise``). Handedness is checked where labels.json gives the side and, for
CMU Panoptic/hand_labels images, where the file name ends in _l / _r (CMU's convention).
The photos are only read, never copied. Skips with a message when the folder is absent.

Per-photo keypoint uncertainty (``detector.KeypointSigmaRule``): the spread of MediaPipe's passes
(whole photo, 2.2 l crop, flipped crop) against each keypoint's true error, their Spearman rank
correlation, and the rule fitted to them by maximum likelihood (``detector.fit_sigma_rule``);
``--write-sigma`` writes that rule where the ``[detector] sigma_rule`` setting reads it.

    python benchmarks/bench_detector.py --composites [--limit N] [--rendered N] [--write-composites FILE]

Full scenes (issue 17, ``composites.py``): every labelled hand pasted into scikit-image's
hand-free photos at l = 18, 28, 40, 56 px, alone and at the wrist of a person seen whole (the
cameraman, and his mirror image), with the body pass (``body_finder``) on: detection rate and mean
2D error (px at the 320 crop of 2.2 l) per size bin and per pass, and the other hands reported in
those scenes; false hands per hand-free photo (each background and its upside-down copy); the
packaged photos of people; and the time per photo with the body pass on and off, on the close-ups
where the hand pass already finds the labelled hand, the hand-free photos and the composites. All
of it twice: with the detector's defaults (finer tile levels ``detector.TILE_LEVELS``, native
views of small hands, the finest tiles' palm proposals read again zoomed, the context view of
small hands) and as before the last two (the ``before`` entries). ``--rendered N`` adds N of the
project's own rendered hands (found by MediaPipe at full size) as close-ups, with the defaults and
as before: the set the detector's 2D choices were made on, since the labelled photos are
calibration data.

    python benchmarks/bench_detector.py --diagnose [--rendered N] [--before]

Why the 16-32 px hands alone are missed (``diagnose_misses``): for each such composite the
detector misses, the strongest palm detection near the hand and the landmark pass's verdict on
the best tile of each level (and of 1/8 of the side, one level finer than the detector searches),
then the cause: the palm detector silent (under 0.1), weak (0.1 to its 0.3 threshold), the
landmark pass rejecting the hand (MediaPipe's hand presence under 0.5), or a hand read on a tile
but lost when no second view confirmed it. With ``--rendered N`` on N rendered hands instead;
with ``--before`` the misses of the detector as before (``BEFORE``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from wildhands.data.detector import (HandDetector, detection_report, fit_sigma_rule, keypoint_errors_at_crop,
                                     match_detection, sigma_pairs)
from wildhands.data.images import read_image
from wildhands.fileio import write_json
from wildhands.hand import keypoints as kp
from wildhands.paths import REAL_PHOTOS_DIR

PX_PER_L = 320 / 2.2


def known_side(entry: dict) -> str | None:
    """The hand's side from the labels, else from a CMU file name (``..._l.jpg`` / ``..._r.jpg``)."""
    if entry.get("side"):
        return entry["side"]
    stem = Path(entry["image"]).stem
    if entry["source"] == "panoptic" and stem[-2:] in ("_l", "_r"):
        return "left" if stem.endswith("_l") else "right"
    return None


def measure(images, labels, sides, second_pass: bool) -> tuple[dict, float]:
    with HandDetector(second_pass=second_pass) as detector:
        start = time.perf_counter()
        report = detection_report(detector, images, labels[..., :2], labels[..., 2], sides)
        return report, (time.perf_counter() - start) / len(images)


def per_source(entries, labels, report: dict) -> dict:
    """Median and 90th-percentile error (px at 320) of the detected hands of each source."""
    errors: dict[str, list] = {}
    for entry, label, det in zip(entries, labels, report["detections"]):
        if det is not None:
            errors.setdefault(entry["source"], []).append(
                keypoint_errors_at_crop(det.keypoints_2d, label[:, :2], label[:, 2]))
    return {source: {"hands": sum(e["source"] == source for e in entries), "detected": len(err),
                     "median_px": round(float(np.nanmedian(err)), 2),
                     "p90_px": round(float(np.nanpercentile(err, 90)), 2)}
            for source, err in sorted(errors.items())}


def print_report(entries, labels, report: dict, per_photo_s: float, title: str) -> None:
    stats = report["per_keypoint"]
    print(f"\n== {title}: {report['detected']}/{report['hands']} hands detected (miss rate "
          f"{report['miss_rate']:.2f}), handedness {report['handedness_correct'][0]}/"
          f"{report['handedness_correct'][1]} right where the side is known, {1000 * per_photo_s:.0f} ms per photo")
    print(f"{'image':>32} {'side':>6} {'found':>6} {'median px':>10} {'max px':>7}")
    for entry, label, det in zip(entries, labels, report["detections"]):
        if det is None:
            print(f"{entry['image']:>32} {known_side(entry) or '-':>6} {'miss':>6}")
            continue
        err = keypoint_errors_at_crop(det.keypoints_2d, label[:, :2], label[:, 2])
        print(f"{entry['image']:>32} {known_side(entry) or '-':>6} {det.handedness:>6} "
              f"{np.nanmedian(err):10.1f} {np.nanmax(err):7.1f}")
    print(f"{'keypoint':>12} {'mean':>6} {'median':>7} {'p90':>6}   px at the 320 crop of 2.2 l "
          f"(divide by {PX_PER_L:.0f} for fractions of l)")
    for i, name in enumerate(kp.KEYPOINT_NAMES):
        print(f"{name:>12} {stats['mean_px'][i]:6.1f} {stats['median_px'][i]:7.1f} {stats['p90_px'][i]:6.1f}")
    print(f"{'all':>12} {report['mean_px']:6.1f} {report['median_px']:7.1f}")
    for source, row in per_source(entries, labels, report).items():
        print(f"{source:>12}: {row['detected']}/{row['hands']} detected, median {row['median_px']:.1f} px, "
              f"p90 {row['p90_px']:.1f} px")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default=str(REAL_PHOTOS_DIR), help="folder with labels.json")
    parser.add_argument("--write", default=None, help="write the statistics JSON here (with the second pass)")
    parser.add_argument("--write-sigma", default=None, help="write the fitted per-photo sigma rule here")
    parser.add_argument("--composites", action="store_true", help="the full-scene benchmark of issue 17 instead")
    parser.add_argument("--limit", type=int, default=None, help="--composites: the first N labelled hands only")
    parser.add_argument("--write-composites", default=None, help="--composites: write the report JSON here")
    parser.add_argument("--diagnose", action="store_true", help="why the 16-32 px hands alone are missed")
    parser.add_argument("--before", action="store_true", help="--diagnose: the detector before (BEFORE)")
    parser.add_argument("--rendered", type=int, default=0,
                        help="--composites: also N rendered hands as close-ups (the tuning set)")
    args = parser.parse_args()
    if args.diagnose:
        diagnose_misses(Path(args.photos), args.rendered, args.before)
        return
    if args.composites:
        composites_benchmark(Path(args.photos), args.limit, args.write_composites, args.rendered)
        return
    labels_path = Path(args.photos) / "labels.json"
    if not labels_path.is_file():
        print(f"skipped: no labelled photos at {labels_path}")
        return
    entries = json.loads(labels_path.read_text())
    images = [read_image(Path(args.photos) / e["image"]) for e in entries]
    labels = np.array([e["keypoints_2d"] for e in entries], float)
    sides = [known_side(e) for e in entries]
    for second_pass in (False, True):
        report, per_photo_s = measure(images, labels, sides, second_pass)
        print_report(entries, labels, report, per_photo_s,
                     "with the second pass on the 2.2 l crop" if second_pass else "whole photo only")
    sigma = sigma_report(report["detections"], labels)
    if args.write_sigma:
        write_json(args.write_sigma, {
            "source": f"MediaPipe Hands 0.10.21 passes (whole photo, 2.2 l crop, flipped crop) against the "
                      f"{len(entries)} labelled hands of ../shared/real_photos: maximum-likelihood fit of "
                      f"detector.KeypointSigmaRule to the passes' spread and the true errors; written by "
                      f"benchmarks/bench_detector.py --write-sigma",
            "unit": "pixels of the 320x320 crop of 2.2 l around the hand, per axis", **sigma})
        print(f"wrote {args.write_sigma}")
    if args.write:
        sources = sorted({e["source"] for e in entries})
        write_json(args.write, {
            "source": f"MediaPipe Hands 0.10.21 (HandDetector defaults: whole photo, then the second pass on "
                      f"the 2.2 l crop) against the {len(entries)} labelled hands of ../shared/real_photos "
                      f"({', '.join(sources)}); matched to the labelled hand, statistics over detected hands "
                      f"and visible keypoints; handedness where labels.json or a CMU file name (_l/_r) "
                      f"gives the side; written by benchmarks/bench_detector.py",
            "unit": "pixels of the 320x320 crop of 2.2 l around the labelled hand (1 px = l / 145)",
            **{k: v for k, v in report.items() if k != "detections"},
            "per_source": per_source(entries, labels, report),
        })
        print(f"wrote {args.write}")


def sigma_report(detections, labels) -> dict:
    """How well the passes' spread predicts each keypoint's error, and the rule fitted to them."""
    from dataclasses import asdict

    from scipy.stats import spearmanr

    spread, sigma, error = sigma_pairs(detections, labels[..., :2], labels[..., 2])
    rule = fit_sigma_rule(spread, error)
    fitted = np.minimum(rule.sigma_max_px, np.hypot(rule.sigma_floor_px, rule.gain * spread))
    within = float(np.mean(error <= fitted * np.sqrt(2 * np.log(2))))  # the median of a Rayleigh is sigma sqrt(2 ln 2)
    out = {"keypoints": int(len(error)), "hands": int(sum(d is not None and d.sigma_px is not None for d in detections)),
           "spearman_spread_error": round(float(spearmanr(spread, error)[0]), 3),
           "fraction_within_median": round(within, 3), "rule": asdict(rule)}
    print(f"\n== per-photo sigma: {out['keypoints']} keypoints of {out['hands']} hands seen by 2+ passes; "
          f"Spearman(spread, error) = {out['spearman_spread_error']:.2f}; fitted rule {asdict(rule)}; "
          f"{100 * within:.0f} % of errors under the rule's median (50 % expected)")
    return out


PRESENCE_LEVELS = (0.5, 0.3, 0.15, 0.05, 0.0)   # hand presence bins of the landmark pass (0.5: MediaPipe's own)


def _probe_graph(presence: float):
    """MediaPipe's hand graph with its palm detector reading from 0.05, its landmark pass keeping hands
    from ``presence`` on, and its palm detections reported."""
    from mediapipe.python.solution_base import SolutionBase

    return SolutionBase(
        binary_graph_path="mediapipe/modules/hand_landmark/hand_landmark_tracking_cpu.binarypb",
        side_inputs={"model_complexity": 1, "num_hands": 8, "use_prev_landmarks": False},
        calculator_params={"palmdetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": 0.05,
                           "handlandmarkcpu__ThresholdingCalculator.threshold": presence},
        outputs=["multi_hand_landmarks", "multi_handedness", "palm_detections"])


def _view_verdict(graphs: dict, view: np.ndarray, labels: np.ndarray) -> tuple[float, float | None]:
    """(the strongest palm detection within 0.75 l of the labelled hand, the highest of
    ``PRESENCE_LEVELS`` at which the landmark pass still reads the hand; None: never) on one view."""
    from wildhands.data.crops import crop_box
    from wildhands.data.detector import palm_proposals

    h, w = view.shape[:2]
    cx, cy, size = crop_box(labels, None, 1.0)

    def reads(result) -> bool:
        for marks in result.multi_hand_landmarks or []:
            points = np.array([[m.x * w - 0.5, m.y * h - 0.5] for m in marks.landmark])
            if np.median(np.linalg.norm(points - labels, axis=1)) < 0.5 * size:
                return True
        return False

    result = graphs[0.0].process(np.ascontiguousarray(view))
    palm = max([p[3] for p in palm_proposals(result, w, h) if np.hypot(p[0] - cx, p[1] - cy) < 0.75 * size],
               default=0.0)
    if not reads(result):
        return palm, None
    presence = 0.0
    for level in sorted(PRESENCE_LEVELS)[1:]:
        if not reads(graphs[level].process(np.ascontiguousarray(view))):
            break
        presence = level
    return palm, presence


def diagnose_misses(folder: Path, rendered: int = 0, before: bool = False) -> dict:
    """Per 16-32 px hand alone that the detector misses: palm score and presence on the best tile of
    each level (1/2, 1/4, 1/6 and 1/8 of the longer side), and the cause (see the module docstring)."""
    from collections import Counter

    from wildhands.data.composites import build_composites, labelled_photos, rendered_close_ups
    from wildhands.data.detector import TILE_LEVELS, _touches, tile_origins

    photos, labels = rendered_close_ups(rendered) if rendered else labelled_photos(folder)
    scenes = [c for c in build_composites(photos, labels, (), seed=300 if rendered else 0) if c.hand_px[0] < 32]
    graphs = {level: _probe_graph(level) for level in PRESENCE_LEVELS}
    causes = Counter()
    with HandDetector(**(BEFORE if before else {})) as detector:
        for scene in scenes:
            label = scene.labels[0]
            if match_detection(detector.detect(scene.image), label[:, :2], label[:, 2]) is not None:
                continue
            best = {}
            for parts in TILE_LEVELS + (8,):
                h, w = scene.image.shape[:2]
                size = max(h, w) // parts
                for y0 in tile_origins(h, size):
                    for x0 in tile_origins(w, size):
                        tile = scene.image[y0:y0 + size, x0:x0 + size]
                        local = label[:, :2] - [x0, y0]
                        if _touches(local, tile.shape, (True,) * 4):
                            continue
                        palm, presence = _view_verdict(graphs, tile, local)
                        key = (-1 if presence is None else presence, palm)
                        if parts not in best or key > best[parts]:
                            best[parts] = key
            searched = [best[p] for p in TILE_LEVELS if p in best]
            if any(palm >= 0.3 and presence >= 0.5 for presence, palm in searched):
                cause = "read on a tile, lost at confirmation"
            elif any(palm >= 0.3 for _, palm in searched):
                cause = "palm fired, landmark pass rejected it"
            elif any(palm >= 0.1 for _, palm in searched):
                cause = "palm weak (0.1-0.3)"
            else:
                cause = "palm detector silent"
            finer = best.get(8, (-1, 0.0))
            causes[cause] += 1
            causes["of which a 1/8 tile reads it"] += finer[1] >= 0.3 and finer[0] >= 0.5
            print(f"{scene.name:>28}: {cause}; best tile per level (presence bin, palm score): "
                  f"{ {p: (b[0], round(b[1], 2)) for p, b in sorted(best.items())} }")
    for graph in graphs.values():
        graph.close()
    print(f"misses of {len(scenes)} hands of 16-32 px alone: {dict(causes)}")
    return dict(causes)


BEFORE = {"proposals": False, "context_view": False}   # the detector before palm proposals and context views
BEFORE_LABEL = "before (no palm proposals, no context view)"


def print_bins(bins: dict, title: str) -> None:
    print(f"-- {title}")
    print(f"{'hands':>22} {'found':>7} {'rate':>6} {'err px':>7} {'others':>6}  by pass (hand/tile/body)")
    for name, row in bins.items():
        err = "-" if row["mean_error_px"] is None else f"{row['mean_error_px']:.1f}"
        print(f"{name:>22} {row['found']:>3}/{row['hands']:<3} {row['rate']:6.2f} {err:>7} {row['other_hands']:>6}  "
              f"{row['by_pass']['hand']}/{row['by_pass']['tile']}/{row['by_pass']['body']}")


def composites_benchmark(folder: Path, limit: int | None, write: str | None, rendered: int = 0) -> dict:
    """Issue 17's figures (see the module docstring); skips the pasted hands when ``folder`` is absent."""
    from wildhands.data.body_finder import BodyFinder, BodySettings
    from wildhands.data.composites import (HAND_FREE, background, build_composites, composite_report, labelled_photos,
                                           person_arms, person_photos, rendered_close_ups, seconds_per_photo)

    photos, labels = labelled_photos(folder)
    photos, labels = photos[:limit], labels[:limit]
    finder = BodyFinder()
    arms = person_arms(finder)
    finder.close()
    composites = build_composites(photos, labels, arms)
    hand_free = [background(name) for name in HAND_FREE]
    hand_free += [np.ascontiguousarray(image[::-1]) for image in hand_free]
    print(f"\n== composites: {len(photos)} labelled hands x 4 sizes, alone and at the wrist of "
          f"{', '.join(name for name, _, _ in arms) or 'nobody'}; {len(hand_free)} hand-free photos "
          f"({', '.join(HAND_FREE)}, each also upside down)")

    def timings(detector) -> dict:
        return {"close-ups found": seconds_per_photo(detector, found_all, repeats=3),
                "hand-free": seconds_per_photo(detector, hand_free),
                "composites": seconds_per_photo(detector, [c.image for c in composites[:24]])}

    with HandDetector() as detector:   # the close-ups where the hand pass already finds the labelled hand
        found_all = [photo for photo, label in zip(photos, labels)
                     if match_detection(detector.detect(photo), label[:, :2], label[:, 2]) is not None]
    reports, times = {}, {}
    for name, settings in (("now", {}), ("before", BEFORE)):
        with HandDetector(body=BodySettings(), **settings) as detector:
            reports[name] = composite_report(detector, composites, hand_free)
            if name == "now":
                people = {photo_name: [{"side": d.handedness, "found_by": d.found_by, "score": round(d.score, 2),
                                        "box": [round(v) for v in d.box]} for d in detector.detect(image)]
                          for photo_name, image in person_photos().items()}
            times["body_on_s" if name == "now" else "before_s"] = timings(detector)
    with HandDetector() as detector:
        times["body_off_s"] = timings(detector)
    report = reports["now"]
    for name, title in (("now", "the detector now"), ("before", BEFORE_LABEL)):
        print_bins(reports[name]["bins"], title)
        print(f"false hands per hand-free photo: {reports[name]['false_hands_per_photo']} "
              f"({reports[name]['hand_free_photos']} photos)")
    body_scores = sorted(round(r["score"], 2) for r in report["rows"] if r["found_by"] == "body")
    print(f"scores of the body pass's true hands: {body_scores}")
    for name, hands in people.items():
        print(f"packaged photo of a person, {name}: {hands or 'no hands'}")
    speed = {kind: {key: round(times[key][kind], 3) for key in ("body_on_s", "body_off_s", "before_s")}
             for kind in times["body_on_s"]}
    for kind, row in speed.items():
        print(f"seconds per photo, {kind:>15}: body pass on {row['body_on_s']:.3f}, off {row['body_off_s']:.3f}, "
              f"before (body on) {row['before_s']:.3f}")
    out = {"bins": report["bins"], "false_hands_per_photo": report["false_hands_per_photo"],
           "hand_free_photos": report["hand_free_photos"], "body_scores": body_scores, "people_photos": people,
           "seconds_per_photo": speed, "labelled_hands": len(photos), "arms": [name for name, _, _ in arms],
           "before": {"label": BEFORE_LABEL,
                      "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in BEFORE.items()},
                      "bins": reports["before"]["bins"],
                      "false_hands_per_photo": reports["before"]["false_hands_per_photo"]}}
    if rendered:
        close_ups, close_up_labels = rendered_close_ups(rendered)
        scenes = build_composites(close_ups, close_up_labels, arms, seed=300)
        out["rendered"] = {"close_ups": len(close_ups)}
        for name, settings in (("now", {}), ("before", BEFORE)):
            with HandDetector(body=BodySettings(), **settings) as detector:
                tuning = composite_report(detector, scenes)
            print_bins(tuning["bins"], f"{len(close_ups)} rendered hands (the tuning set), {name}")
            out["rendered"]["bins" if name == "now" else "before_bins"] = tuning["bins"]
    if write:
        from wildhands.data.detector import CONTEXT_VIEW, MAX_PROPOSALS, PROPOSAL_SCORE, TILE_LEVELS, ZOOM

        write_json(write, {"source": "benchmarks/bench_detector.py --composites (issue 17), MediaPipe 0.10.21 "
                           f"Hands + Pose, HandDetector defaults (tile levels {list(TILE_LEVELS)}, native views, "
                           f"palm proposals from {PROPOSAL_SCORE} read again {ZOOM}x zoomed, at most "
                           f"{MAX_PROPOSALS}, context view {CONTEXT_VIEW} l) with body_finder.BodySettings() "
                           "defaults; 'before': the same without palm proposals and context views; timings on a "
                           "2-core machine shared with other jobs",
                           "unit": "error: px at the 320 crop of 2.2 l around the labelled hand; hand sizes: l, "
                                   "scene pixels (1024x768 scenes)", **out})
        print(f"wrote {write}")
    return out


if __name__ == "__main__":
    main()
