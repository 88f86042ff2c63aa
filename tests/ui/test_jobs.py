"""The UI's jobs without a browser: the face table read into the CLI's --source-face or --map, the swap run by
run_swap with the process's shared models, the result verified, and every bad choice refused with one sentence."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from clipswap.checkpoints.pretrained import DEMO_DIR, DEMO_FILE
from clipswap.media.images import read_image
from clipswap.ui.faces import FoundFace, find_faces, frame_at
from clipswap.ui.jobs import ChoiceError, Choices, build_request, parse_face_table, preview_request, run_job
from clipswap.ui.models import ModelCache, ModelKey, PasteOptions

from conftest import example_faces, sface_cosines_to_source, shared_data


def _faces(count: int) -> list[FoundFace]:
    crop = np.full((40, 40, 3), 128, np.uint8)
    return [FoundFace(n, (10 * n, 0, 10 * n + 40, 40), 0.9, crop) for n in range(1, count + 1)]


def test_the_face_table_reads_numbers_and_none():
    rows = [[1, "2"], [2, "none"], [3, 1.0], [4, ""], [5, None], [6, float("nan")]]
    assert parse_face_table(rows, target_count=6, source_count=2) == {1: 2, 3: 1}


@pytest.mark.parametrize(("rows", "words"), [
    ([[1, "none"]], "no target face is chosen"),
    ([[1, "3"]], "the source face of target face 1 is '3'; write a face number from 1 to 2"),
    ([[1, "her"]], "the source face of target face 1 is 'her'"),
    ([[9, "1"]], "the target face is '9'; write a face number from 1 to 1"),
    ([[1, "1.5"]], "the source face of target face 1 is '1.5'"),
])
def test_a_bad_face_table_is_one_sentence(rows, words):
    with pytest.raises(ChoiceError, match="^" + re.escape(words)):
        parse_face_table(rows, target_count=1, source_count=2)


def test_one_source_face_for_every_target_face_is_source_face(tmp_path):
    request = build_request(Path("s.jpg"), Path("t.mp4"), tmp_path / "o.mp4", {1: 2, 2: 2}, _faces(3), _faces(2),
                            Choices(tracking=False, watermark=False), tmp_path)
    assert (request.source, request.source_face, request.mapping) == (Path("s.jpg"), 2, ())
    assert not request.tracking and not request.watermark and request.smoothing
    # a source with one face needs no --source-face
    request = build_request(Path("s.jpg"), Path("t.jpg"), tmp_path / "o.jpg", {1: 1}, _faces(1), _faces(1),
                            Choices(), tmp_path)
    assert request.source_face is None


def test_a_subset_or_several_sources_become_map_pairs_of_crops(tmp_path):
    request = build_request(Path("s.jpg"), Path("t.jpg"), tmp_path / "o.jpg", {2: 1, 3: 2}, _faces(2), _faces(3),
                            Choices(), tmp_path)
    assert request.source is None
    assert [(a.name, b.name) for a, b in request.mapping] == [("target_face_2.png", "source_face_1.png"),
                                                             ("target_face_3.png", "source_face_2.png")]
    assert read_image(request.mapping[0][0]).shape == (40, 40, 3)
    with pytest.raises(ChoiceError, match="needs a generator model"):
        build_request(Path("s.jpg"), Path("t.jpg"), tmp_path / "o.jpg", {2: 1}, _faces(1), _faces(3),
                      Choices(model=ModelKey("landmarks")), tmp_path)


@pytest.fixture(scope="module")
def cache():
    if not (DEMO_DIR / DEMO_FILE).is_file():
        pytest.skip("the shipped demo generator is absent (it is committed to pretrained_ckpts/demo/)")
    return ModelCache()


def test_requests_share_the_loaded_networks_and_keep_their_own_state(cache):
    key = ModelKey("demo", "tf")
    first, line = cache.swapper(key, PasteOptions())
    second, same_line = cache.swapper(key, PasteOptions(blend="landmarks", color_correction="reinhard"))
    assert line == same_line and line.startswith("generator: demo")
    assert first is not second
    assert second.identity is first.identity and second.detector is first.detector
    assert second._compiled is first._compiled  # one compiled generator, not one per request
    assert (second.blend, second.color_correction, first.blend) == ("landmarks", "reinhard", "published")
    source, _ = example_faces()
    first.set_source(read_image(source))
    assert first.source_vector is not None and second.source_vector is None
    with pytest.raises(ValueError, match="blend must be one of"):
        cache.swapper(key, PasteOptions(blend="smear"))
    # A view keeps the swapper's detail (a checkpoint's recommended paste_detail, as `clipswap swap` without
    # --detail) unless given one; the poisson blend takes none.
    detailed = first.reconfigured(detail=0.4)
    assert detailed.reconfigured().detail == 0.4 and detailed.reconfigured(detail=0.1).detail == 0.1
    assert detailed.reconfigured(blend="poisson").detail == 0.0
    # And its sharpen (a checkpoint's paste_sharpen: the shipped demo's manifest asks for 1) alike.
    sharpened = first.reconfigured(sharpen=1.5)
    assert sharpened.reconfigured().sharpen == 1.5 and sharpened.reconfigured(sharpen=0.5).sharpen == 0.5
    assert sharpened.reconfigured(blend="poisson").sharpen == 0.0 and first.sharpen == 1.0
    with pytest.raises(ValueError, match="sharpen must be in"):
        first.reconfigured(sharpen=2.5)


def test_a_photo_job_swaps_labels_and_verifies(cache, tmp_path):
    source_path, target_path = example_faces()
    detector = cache.detector_of(ModelKey("demo"))
    source_faces = find_faces(detector, read_image(source_path))
    target_faces = find_faces(detector, read_image(target_path))
    assert len(source_faces) == len(target_faces) == 1
    choices = Choices(model=ModelKey("demo"))
    request = build_request(source_path, target_path, tmp_path / "out.jpg", {1: 1}, source_faces, target_faces,
                            choices, tmp_path)
    result = run_job(cache, request, choices)
    assert result.output == tmp_path / "out.jpg" and result.marked
    assert result.summary == f"swapped 1 face(s); wrote {tmp_path / 'out.jpg'}"
    assert any("watermark  found" in line for line in result.verify_lines)
    after, before = sface_cosines_to_source(read_image(source_path), read_image(target_path),
                                            read_image(result.output))
    assert after > before
    unmarked = run_job(cache, build_request(source_path, target_path, tmp_path / "plain.jpg", {1: 1}, source_faces,
                                            target_faces, Choices(model=ModelKey("demo"), watermark=False),
                                            tmp_path), Choices(model=ModelKey("demo"), watermark=False))
    assert any("watermark is off" in note for note in unmarked.notes)
    assert any("watermark  not found" in line for line in unmarked.verify_lines)


def test_a_video_preview_swaps_one_frame(cache, tmp_path):
    video = shared_data("video", "talking_head_1.mp4")
    source_path, _ = example_faces()
    frame = frame_at(video, 1.0)
    detector = cache.detector_of(ModelKey("demo"))
    choices = Choices(model=ModelKey("demo"))
    request = build_request(source_path, video, tmp_path / "out.mp4", {1: 1},
                            find_faces(detector, read_image(source_path)), find_faces(detector, frame), choices,
                            tmp_path)
    preview = preview_request(request, 1.0, tmp_path)
    assert preview.output == tmp_path / "preview.png" and read_image(preview.target).shape == frame.shape
    result = run_job(cache, preview, choices)
    assert result.marked and read_image(result.output).shape == frame.shape
    assert not (tmp_path / "out.mp4").exists()


def test_an_unreadable_upload_is_the_clis_sentence(cache, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG")
    from clipswap.media.common import MediaError

    with pytest.raises(MediaError, match=r"broken\.jpg cannot be read as an image \(corrupt or not really a \.jpg"):
        frame_at(broken)


def test_a_live_swapper_takes_the_fast_paths_on_its_own_swapper_only(cache):
    from clipswap.ui.live import LiveSwapper, ScaledDetector

    # the landmark warp: the model with a pre_swap stage, whose triangle transforms the live path takes from numpy
    key = ModelKey("warp", "tf")
    base, _ = cache.base(key)
    swapper, _ = cache.swapper(key, PasteOptions())
    source_path, _ = example_faces()
    frame = frame_at(shared_data("video", "talking_head_1.mp4"), 1.0)
    live = LiveSwapper(swapper, read_image(source_path), watermark=False)
    assert isinstance(swapper.detector, ScaledDetector) and swapper.warp_transforms == "numpy"
    # the shared swapper, and every later photo or video request, keep the full-size detector and qhull's transforms
    assert not isinstance(base.detector, ScaledDetector) and base.warp_transforms == "qhull"
    later, _ = cache.swapper(key, PasteOptions())
    assert later.detector is base.detector and later.warp_transforms == "qhull"
    result = live.process(frame)
    assert result.faces == 1 and result.image.shape == frame.shape
    assert swapper.pre_swap_failures == 0 and "pre_swap" in swapper.timer.cpu_seconds
    after, before = sface_cosines_to_source(read_image(source_path), frame, result.image)
    assert after > before
