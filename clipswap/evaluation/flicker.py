"""Temporal stability of a swapped video against its target video.

Both videos are read in step, frame by frame (never whole in memory). In each target frame the largest face is
found (YuNet, the evaluation detector) and then followed: in later frames the face overlapping the last one most
(IoU 0.3 or more; when none does, the chain breaks and the largest face starts a new one). In the swapped frame the
face overlapping the target's face most is compared with it. Three measures:

- landmark jitter: the second difference of each of the five landmarks from frame to frame,
  |p(t+1) - 2 p(t) + p(t-1)|, in per cent of the face's size (sqrt of its box area), averaged over points and frame
  triples where both videos have the face. Steady motion has no second difference; detector noise and a swap that
  shakes have. Reported for the swap, for the target, and their difference (the swap's own jitter);
- landmark offset: the mean distance between the swap's landmarks and the target's in the same frame (per cent of the
  face's size): where the swapped face sits against where the face is; a smoothing that lags shows here;
- temporal difference: the mean absolute frame-to-frame change of the grey level inside the target's face box, for
  the swap and for the target; their difference is flicker the swap adds (lighting and motion cancel out).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from clipswap.face.detection import sort_by_area
from clipswap.face.tracking import iou_matrix
from clipswap.media.common import MediaError
from clipswap.media.video import VideoReader
from clipswap.registry.detectors import EVALUATION_DETECTOR, Detector


def _largest(detections):
    return sort_by_area(detections)[0] if detections else None


def _follow(detections, last):
    """The detection overlapping `last` most (IoU >= 0.3), or None."""
    if last is None or not detections:
        return None
    overlap = iou_matrix(last.box[None], np.stack([d.box for d in detections]))[0]
    return detections[int(np.argmax(overlap))] if overlap.max() >= 0.3 else None


def _second_differences(track: list[np.ndarray | None], scales: list[float | None]) -> list[float]:
    """Per frame triple, the mean second difference of the points (pixels) in per cent of the middle frame's face
    size (the points stay in pixels until then: dividing positions by a size that changes would move them)."""
    values = []
    for before, now, after, scale in zip(track, track[1:], track[2:], scales[1:], strict=False):
        if before is not None and now is not None and after is not None:
            values.append(100.0 * float(np.mean(np.linalg.norm(after - 2 * now + before, axis=1))) / scale)
    return values


def video_stability(target: str | Path, swapped: str | Path, detector: Detector | None = None) -> dict:
    """Flicker measures of `swapped` against `target` (same frame count and size), faces found by `detector` (None:
    the evaluation's detector, clipswap.registry.detectors.EVALUATION_DETECTOR).

    Returns: {"frames", "frames_with_face", "landmark_jitter_swap", "landmark_jitter_target",
    "landmark_jitter_excess", "landmark_offset" (per cent of face size), "temporal_difference_swap",
    "temporal_difference_target", "temporal_difference_excess" (grey levels)}.

    Raises:
        MediaError: a video cannot be read, or the two differ in size or frame count.
    """
    if detector is None:
        from clipswap.face.detectors import build_detector

        detector = build_detector(EVALUATION_DETECTOR)
    swap_points: list[np.ndarray | None] = []
    target_points: list[np.ndarray | None] = []
    scales: list[float | None] = []
    swap_changes, target_changes = [], []
    frames = with_face = 0
    previous = followed = None
    with VideoReader(target) as target_video, VideoReader(swapped) as swap_video:
        if target_video.info.size != swap_video.info.size:
            raise MediaError(f"{swapped} is {swap_video.info.size} and its target {target} is "
                             f"{target_video.info.size}; compare a swap with the video it was made from")
        swap_frames = iter(swap_video)
        for target_frame in target_video:
            swap_frame = next(swap_frames, None)
            if swap_frame is None:
                raise MediaError(f"{swapped} has fewer frames than {target}; compare a swap with its own target")
            frames += 1
            found = detector.detect(target_frame)
            continued = _follow(found, followed)
            face = continued or _largest(found)
            if face is not None and followed is not None and continued is None:
                # a new chain: no second difference or frame difference spans the break
                target_points.append(None)
                swap_points.append(None)
                scales.append(None)
                previous = None
            followed = face
            if face is None:
                target_points.append(None)
                swap_points.append(None)
                scales.append(None)
                previous = None
                continue
            with_face += 1
            scale = math.sqrt(max(face.area, 1.0))
            target_points.append(face.landmarks.astype(np.float64))
            scales.append(scale)
            candidates = detector.detect(swap_frame)
            match = None
            if candidates:
                overlap = iou_matrix(face.box[None], np.stack([c.box for c in candidates]))[0]
                if overlap.max() >= 0.3:
                    match = candidates[int(np.argmax(overlap))]
            swap_points.append(None if match is None else match.landmarks.astype(np.float64))
            height, width = target_frame.shape[:2]
            x0, y0, x1, y1 = (int(round(float(v))) for v in face.box)
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
            grey_target = cv2.cvtColor(target_frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
            grey_swap = cv2.cvtColor(swap_frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
            if previous is not None and x1 > x0 and y1 > y0:
                last_target, last_swap = previous
                target_changes.append(float(np.mean(np.abs(grey_target - last_target)[y0:y1, x0:x1])))
                swap_changes.append(float(np.mean(np.abs(grey_swap - last_swap)[y0:y1, x0:x1])))
            previous = (grey_target, grey_swap)
        if next(swap_frames, None) is not None:
            raise MediaError(f"{swapped} has more frames than {target}; compare a swap with its own target")
    both = [(s, t) if s is not None and t is not None else (None, None)
            for s, t in zip(swap_points, target_points, strict=True)]
    offsets = [100.0 * float(np.mean(np.linalg.norm(s - t, axis=1))) / scale
               for (s, t), scale in zip(both, scales, strict=True) if s is not None]
    jitter_swap = _second_differences([s for s, _ in both], scales)
    jitter_target = _second_differences([t for _, t in both], scales)

    def mean(values):
        return float(np.mean(values)) if values else None

    report = {
        "frames": frames,
        "frames_with_face": with_face,
        "landmark_jitter_swap": mean(jitter_swap),
        "landmark_jitter_target": mean(jitter_target),
        "landmark_offset": mean(offsets),
        "temporal_difference_swap": mean(swap_changes),
        "temporal_difference_target": mean(target_changes),
    }
    for name in ("landmark_jitter", "temporal_difference"):
        swap, own = report[f"{name}_swap"], report[f"{name}_target"]
        report[f"{name}_excess"] = None if swap is None or own is None else swap - own
    return report


def stability_table(rows: list[tuple[str, dict]]) -> str:
    """A Markdown table of video_stability reports, one row per (name, report)."""

    def cell(value):
        return "" if value is None else f"{value:.3f}"

    lines = [
        "| video | frames (with face) | landmark jitter swap / target / excess (% face) | landmark offset (% face) | "
        "temporal difference swap / target / excess (grey levels) |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['frames']} ({r['frames_with_face']}) | {cell(r['landmark_jitter_swap'])} / "
            f"{cell(r['landmark_jitter_target'])} / {cell(r['landmark_jitter_excess'])} | "
            f"{cell(r['landmark_offset'])} | "
            f"{cell(r['temporal_difference_swap'])} / {cell(r['temporal_difference_target'])} / "
            f"{cell(r['temporal_difference_excess'])} |"
        )
    return "\n".join(lines) + "\n"
