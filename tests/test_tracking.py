"""Issue 13 items 1-2: face tracks across video frames (IoU matching, One Euro smoothing, bridged misses, scene cuts,
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
    smoothed = np.array([value for value in map(OneEuroFilter(RATE), still)])[50:]
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
    """Frame 2 has no detection: the tracked face is still swapped. The reference matches only the first frame's
    face (its identity vector turns away after it), yet the track stays selected."""
    calls = []

    def embed(crops):
        calls.append(len(crops))
        vector = np.zeros((len(crops), 4), np.float32)
        vector[:, 0 if len(calls) == 1 else 1] = 1.0  # matches the reference on the first call only
        return vector

    identity = StubIdentity(embed)
    script = [[face_at(100, 80)], [face_at(101, 80)], [], [face_at(103, 81)]]
    swapper = FaceSwapper(lambda inputs: tf.ones_like(inputs[0]), 64, 4, identity, ScriptedDetector(script))
    swapper.source_vector = np.ones(4, np.float32)
    swapper.reference_vector = np.array([1.0, 0, 0, 0], np.float32)
    swapper.start_tracking(RATE)
    counts = [swapper.swap_frame(FRAME)[1] for _ in range(4)]
    assert counts == [1, 1, 1, 1]
    assert calls == [1], "a track that matched is not checked again"
    swapper.stop_tracking()
    assert swapper.tracker is None


def _cut(seconds: float, folder) -> str:
    clip = folder / "clip.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i",
                    str(shared_data("video", "talking_head_1.mp4")), "-t", str(seconds), "-c:v", "libx264",
                    "-crf", "18", "-an", str(clip)], check=True)
    return clip


@pytest.mark.slow
def test_flicker_drops_with_smoothing_on_a_real_video(tmp_path):
    """The demo model on 2 s of a real talking-head clip, with and without tracking, scored by `clipswap evaluate`
    with the swaps given as video pairs: smoothing lowers both the landmark jitter and the temporal difference the
    swap adds."""
    pytest.importorskip("dlib", reason="the demo model needs dlib (the eval extra)")
    clip = _cut(2.0, tmp_path)
    source = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    runner = CliRunner()
    for name, extra in (("tracked", []), ("raw", ["--no-tracking"])):
        result = runner.invoke(main, ["swap", "--no-progress", "-s", str(source), "-t", str(clip), "-o",
                                      str(tmp_path / f"{name}.mp4"), *extra])
        assert result.exit_code == 0, result.output
        assert ("1 face track(s)" in result.output) == (name == "tracked")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{source}\t{clip}\t{tmp_path / name}.mp4\n" for name in ("tracked", "raw")))
    result = runner.invoke(main, ["evaluate", "--pairs", str(pairs), "--output-dir", str(tmp_path / "eval"),
                                  "--no-progress"])
    assert result.exit_code == 0, result.output
    import json  # noqa: PLC0415

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


def test_swapper_keeps_a_tracks_map_source():
    """--map: the face matches reference 0 on the first frame and would match reference 1 afterwards; its track
    keeps source 0 throughout. The test generator paints a crop with its identity input's first value."""
    calls = []

    def embed(crops):
        calls.append(len(crops))
        vector = np.zeros((len(crops), 4), np.float32)
        # calls 1 and 2: the two --map references (e0, e1); 3: the face on frame 1 (e0); later: e1
        vector[:, {1: 0, 2: 1, 3: 0}.get(len(calls), 1)] = 1.0
        return vector

    def painter(inputs):
        target, identity = inputs
        return tf.zeros_like(target) + identity[:, 0][:, None, None, None]

    script = [[face_at(100, 80)], [face_at(100, 80)], *([[face_at(101, 80)]] * 4)]
    swapper = FaceSwapper(painter, 64, 4, StubIdentity(embed), ScriptedDetector(script), blend="landmarks")
    swapper.source_vector = None
    swapper._source_parts = lambda image, what: (np.full(4, 0.9 if "1" in what else -0.9, np.float32), None, None)
    swapper.set_mapping([(FRAME, FRAME), (FRAME, FRAME)])  # two detections: the references
    swapper.start_tracking(RATE)
    centres = []
    for _ in range(3):
        output, count = swapper.swap_frame(FRAME)
        assert count == 1
        centres.append(int(output[80 + 36, 100 + 30, 0]))
    # source 0 is the identity 0.9 -> (0.9 + 1) / 2 * 255 = 242 at the face centre, on every frame.
    assert all(value > 200 for value in centres), centres
    assert calls == [1, 1, 1], "the track's mapping is decided once"
    swapper.stop_tracking()
    output, _ = swapper.swap_frame(FRAME)  # untracked: the face is judged again, matches reference 1 (source -0.9)
    assert int(output[80 + 36, 100 + 30, 0]) < 50
