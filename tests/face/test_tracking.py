"""Face tracks across video frames (IoU matching, One Euro smoothing, bridged misses, scene cuts,
decisions kept per track), and the flicker metric, which drops with smoothing on a real video."""

from __future__ import annotations

import math
import shutil
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from clipswap.cli import main
from clipswap.face.detection import Detection
from clipswap.face.tracking import FaceTracker, OneEuroFilter, iou_matrix
from clipswap.inference.swapper import FaceSwapper

from conftest import shared_data

RATE = 25.0


def reference_one_euro(samples, rate, min_cutoff, beta, d_cutoff):
    """The filter of Casiez et al. (CHI 2012), scalar, written from the paper's pseudo-code."""

    def smoothing_factor(cutoff):
        r = 2 * math.pi * cutoff / rate
        return r / (r + 1)

    out, x_prev, dx_prev = [], None, 0.0
    for x in samples:
        if x_prev is None:
            x_hat = x
        else:
            dx = (x - x_prev) * rate
            dx_prev = dx_prev + smoothing_factor(d_cutoff) * (dx - dx_prev)
            cutoff = min_cutoff + beta * abs(dx_prev)
            x_hat = x_prev + smoothing_factor(cutoff) * (x - x_prev)
        out.append(x_hat)
        x_prev = x_hat
    return np.array(out)


def test_one_euro_matches_the_papers_filter():
    rng = np.random.default_rng(0)
    signals = np.cumsum(rng.normal(0, 0.05, (200, 3)), axis=0) + rng.normal(0, 0.02, (200, 3))
    ours = OneEuroFilter(RATE, min_cutoff=0.8, beta=2.0, d_cutoff=1.2)
    got = np.stack([ours(sample) for sample in signals])
    for column in range(3):
        np.testing.assert_allclose(got[:, column], reference_one_euro(signals[:, column], RATE, 0.8, 2.0, 1.2),
                                   rtol=1e-12, atol=1e-12)


def test_one_euro_steadies_a_still_point_and_follows_a_moving_one():
    rng = np.random.default_rng(1)
    still = 5.0 + rng.normal(0, 0.1, 300)
    smoothed = np.array([value for value in map(OneEuroFilter(RATE, beta=0.5), still)])[50:]
    assert np.std(smoothed) < 0.4 * np.std(still[50:])
    ramp = np.arange(100) * 0.2  # 5 units a second
    slow, fast = OneEuroFilter(RATE, beta=0.0), OneEuroFilter(RATE, beta=1.0)
    lag_slow = ramp[-1] - [slow(v) for v in ramp][-1]
    lag_fast = ramp[-1] - [fast(v) for v in ramp][-1]
    assert 0 < lag_fast < 0.5 * lag_slow
    with pytest.raises(ValueError, match="One Euro"):
        OneEuroFilter(RATE, min_cutoff=0.0)


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [100, 100, 101, 101]])
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 1.0, 0.0], [0.0, 0.0, 0.0]])


def face_at(x: float, y: float, size: float = 60.0, jitter: np.ndarray | None = None) -> Detection:
    points = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]]) * size + [x, y]
    if jitter is not None:
        points = points + jitter
    return Detection(box=[x, y, x + size, y + size], score=0.9, landmarks=points)


FRAME = np.full((240, 320, 3), 100, np.uint8)


def test_tracks_keep_their_faces_bridge_misses_and_end():
    tracker = FaceTracker(RATE, max_missed=2)
    ids = {}
    for step in range(6):
        left, right = face_at(20 + 2 * step, 50), face_at(200 - 2 * step, 60)
        detections = [left, right] if step % 2 else [right, left]  # order must not matter
        tracks = tracker.update(FRAME, detections)
        by_x = sorted(tracks, key=lambda track: track.face.box[0])
        ids.setdefault("left", by_x[0].id)
        ids.setdefault("right", by_x[1].id)
        assert (by_x[0].id, by_x[1].id) == (ids["left"], ids["right"])
    # The right face is missed for two frames: its track is still reported (bridged), then dropped at the third.
    for missed in (1, 2):
        tracks = tracker.update(FRAME, [face_at(32, 50)])
        assert sorted(track.id for track in tracks) == sorted(ids.values())
        assert next(track for track in tracks if track.id == ids["right"]).missed == missed
    assert [track.id for track in tracker.update(FRAME, [face_at(32, 50)])] == [ids["left"]]
    assert tracker.bridged == 2 and tracker.started == 2


def test_scene_cut_resets_the_tracks():
    tracker = FaceTracker(RATE)
    first = tracker.update(FRAME, [face_at(20, 50)])[0].id
    assert tracker.update(FRAME, [face_at(21, 50)])[0].id == first
    cut = np.full_like(FRAME, 230)
    assert tracker.update(cut, [face_at(22, 50)])[0].id != first
    assert tracker.scene_cuts == 1


def test_smoothing_reduces_landmark_jitter():
    rng = np.random.default_rng(2)
    raw, smoothed = [], []
    tracker = FaceTracker(RATE)
    for _ in range(100):
        detection = face_at(100, 80, jitter=rng.normal(0, 1.5, (5, 2)))
        raw.append(detection.landmarks)
        smoothed.append(tracker.update(FRAME, [detection])[0].face.landmarks)
    assert np.std(np.array(smoothed)[20:], axis=0).mean() < 0.5 * np.std(np.array(raw)[20:], axis=0).mean()
    unsmoothed = FaceTracker(RATE, smoothing=False)
    detection = face_at(100, 80, jitter=rng.normal(0, 1.5, (5, 2)))
    assert unsmoothed.update(FRAME, [detection])[0].face is detection


class ScriptedDetector:
    """Returns the faces scripted for each call, in order."""

    def __init__(self, script):
        self.script = list(script)

    def detect(self, frame):
        return self.script.pop(0)


class StubIdentity:
    """An identity encoder's interface (name, dim, embed) over a function."""

    name = "stub"
    dim = 4

    def __init__(self, embed):
        self.embed = embed


def test_swapper_bridges_a_missed_detection_and_keeps_the_reference_match():
    """Frame 3 has no detection: the tracked face is still swapped. The face matches the reference fully on frame 1
    and poorly (cosine 0.2, under the 0.35 default) afterwards: by its track's mean it stays selected, while the same
    poor view judged alone is not."""
    calls = []

    def embed(crops):
        calls.append(len(crops))
        angle = 0.0 if len(calls) == 1 else np.arccos(0.2)
        return np.tile([np.cos(angle), np.sin(angle), 0.0, 0.0], (len(crops), 1)).astype(np.float32)

    script = [[face_at(100, 80)], [face_at(101, 80)], [], [face_at(103, 81)], [face_at(103, 81)]]
    swapper = FaceSwapper(lambda inputs: tf.ones_like(inputs[0]), 64, 4, StubIdentity(embed), ScriptedDetector(script))
    swapper.source_vector = np.ones(4, np.float32)
    swapper.reference_vector = np.array([1.0, 0, 0, 0], np.float32)
    swapper.start_tracking(RATE)
    counts = [swapper.swap_frame(FRAME)[1] for _ in range(4)]
    assert counts == [1, 1, 1, 1]
    assert calls == [1, 1, 1], "a bridged frame has no face to judge"
    swapper.stop_tracking()
    assert swapper.tracker is None
    assert swapper.swap_frame(FRAME)[1] == 0


def test_swapper_keeps_a_tracks_map_source():
    """--map: the face is reference 0's on frame 1 (cosine 1) and leans to reference 1 afterwards (0.8 against 0.6);
    by its track's mean it keeps source 0, while the same view judged alone goes to source 1. The test generator
    paints a crop with its identity input's first value."""
    calls = []

    def embed(crops):
        calls.append(len(crops))
        # calls 1 and 2: the two --map references (e0, e1); 3: the face on frame 1 (e0); later: (0.6, 0.8)
        vector = {1: [1.0, 0.0], 2: [0.0, 1.0], 3: [1.0, 0.0]}.get(len(calls), [0.6, 0.8])
        return np.tile([*vector, 0.0, 0.0], (len(crops), 1)).astype(np.float32)

    def painter(inputs):
        target, identity = inputs
        return tf.zeros_like(target) + identity[:, 0][:, None, None, None]

    script = [[face_at(100, 80)], [face_at(100, 80)], *([[face_at(101, 80)]] * 4)]
    swapper = FaceSwapper(painter, 64, 4, StubIdentity(embed), ScriptedDetector(script), blend="landmarks")
    swapper.source_vector = None
    swapper._source_parts = lambda image, what: (np.full(4, 0.9 if "1" in what else -0.9, np.float32), None, None,
                                                 0.0)
    swapper.set_mapping([(FRAME, FRAME), (FRAME, FRAME)])  # two detections: the references
    swapper.start_tracking(RATE)
    centres = []
    for _ in range(3):
        output, count = swapper.swap_frame(FRAME)
        assert count == 1
        centres.append(int(output[80 + 36, 100 + 30, 0]))
    # source 0 is the identity 0.9 -> (0.9 + 1) / 2 * 255 = 242 at the face centre, on every frame.
    assert all(value > 200 for value in centres), centres
    swapper.stop_tracking()
    output, _ = swapper.swap_frame(FRAME)  # untracked: this view alone goes to reference 1 (source -0.9)
    assert int(output[80 + 36, 100 + 30, 0]) < 50


def _cut(seconds: float, folder) -> str:
    clip = folder / "clip.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i",
                    str(shared_data("video", "talking_head_1.mp4")), "-t", str(seconds), "-c:v", "libx264",
                    "-crf", "18", "-an", str(clip)], check=True)
    return clip


@pytest.mark.slow
def test_flicker_drops_with_smoothing_on_a_real_video(tmp_path):
    """The landmark warp (`--model warp`, whose region follows the smoothed 68 points) on 2 s of a real talking-head
    clip, with and without tracking, scored by `clipswap evaluate` with the swaps given as video pairs: smoothing
    lowers both the landmark jitter and the temporal difference the swap adds. (The keypoint-flow demo's own frame to
    frame changes are larger than what the smoothing removes on 2 s: README, "Video stability".)"""
    pytest.importorskip("dlib", reason="the landmark warp needs dlib (the eval extra)")
    clip = _cut(2.0, tmp_path)
    source = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    runner = CliRunner()
    for name, extra in (("tracked", []), ("raw", ["--no-tracking"])):
        result = runner.invoke(main, ["swap", "--no-progress", "-s", str(source), "-t", str(clip), "-o",
                                      str(tmp_path / f"{name}.mp4"), "--model", "warp", *extra])
        assert result.exit_code == 0, result.output
        assert ("1 face track(s)" in result.output) == (name == "tracked")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{source}\t{clip}\t{tmp_path / name}.mp4\n" for name in ("tracked", "raw")))
    result = runner.invoke(main, ["evaluate", "--pairs", str(pairs), "--output-dir", str(tmp_path / "eval"),
                                  "--no-progress"])
    assert result.exit_code == 0, result.output
    import json

    tracked, raw = json.loads((tmp_path / "eval" / "video_metrics.json").read_text())["videos"]
    assert tracked["frames"] == raw["frames"] > 40
    assert tracked["landmark_jitter_excess"] < raw["landmark_jitter_excess"]
    assert tracked["temporal_difference_excess"] < raw["temporal_difference_excess"]
    shutil.rmtree(tmp_path / "eval")


def test_evaluate_video_pair_without_output_or_model(tmp_path):
    clip = _cut(0.5, tmp_path)
    source = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(f"{source}\t{clip}\t-\n")
    result = CliRunner().invoke(main, ["evaluate", "--pairs", str(pairs), "--output-dir", str(tmp_path / "eval"),
                                       "--no-progress"])
    assert result.exit_code == 1
    assert "has no swapped video" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "eval").exists()


@pytest.mark.slow
def test_tracks_keep_their_mapping_through_a_real_crowd_video(tmp_path):
    """1 s of multi_face_1080p (a crowd, the camera panning about 37 px a frame): --map with references cut from the
    first frame's two largest faces. The largest face keeps one track and its mapped source in all 25 frames while
    it crosses half the picture, and no face is swapped twice in a frame."""
    from clipswap.face.detection import sort_by_area
    from clipswap.inference.pipeline import SwapRequest, build_swapper
    from clipswap.media.images import read_image, write_image
    from clipswap.media.video import VideoReader

    clip = tmp_path / "crowd.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i",
                    str(shared_data("video", "multi_face_1080p.mp4")), "-t", "1", "-c:v", "libx264", "-crf", "18",
                    "-an", str(clip)], check=True)
    with VideoReader(clip) as reader:
        frames = [frame.copy() for frame in reader]
    sources = [shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg"),
               shared_data("lfw", "Abdullah_Gul", "Abdullah_Gul_0001.jpg")]
    request = SwapRequest(source=None, target=clip, output=tmp_path / "out.mp4")
    swapper, _ = build_swapper(request)
    faces = sort_by_area(swapper.detector.detect(frames[0]))[:2]
    references = []
    for index, face in enumerate(faces):
        x0, y0, x1, y1 = face.box
        grow = 0.6 * (x1 - x0)
        cut = frames[0][max(0, int(y0 - grow)):int(y1 + grow), max(0, int(x0 - grow)):int(x1 + grow)]
        references.append(read_image(write_image(np.ascontiguousarray(cut), tmp_path / f"ref{index}.png")))
    swapper.set_mapping([(reference, read_image(source)) for reference, source in zip(references, sources,
                                                                                      strict=True)])
    first_source = swapper.mapping[1][0]
    chosen = swapper._sources_for
    record = []

    def spy(frame, found, tracks):
        kept, kept_sources, kept_tracks = chosen(frame, found, tracks)
        record.append([(None if track is None else track.id, source is first_source, face.box.copy())
                       for face, source, track in zip(kept, kept_sources, kept_tracks, strict=True)])
        return kept, kept_sources, kept_tracks

    swapper._sources_for = spy
    swapper.start_tracking(25.0)
    for frame in frames:
        swapper.swap_frame(frame)
    first_track = next(track for track, first, _ in record[0] if first)
    assert all(any(track == first_track and first for track, first, _ in row) for row in record), record
    path = [box for row in record for track, _, box in row if track == first_track]
    assert path[-1][0] - path[0][0] > 500, "the face crossed the picture"
    for row in record:
        boxes = np.stack([box for _, _, box in row])
        overlap = iou_matrix(boxes, boxes) - np.eye(len(boxes))
        assert overlap.max() < 0.3, "a face swapped twice"
