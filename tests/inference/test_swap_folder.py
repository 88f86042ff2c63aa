"""`clipswap swap --target DIR --output DIR` swaps every image and video of a folder with one model
load and one progress bar, skips files already written (a stopped run resumes), reports failed files and exits 1
when any failed; folder requests that cannot work get one sentence."""

from __future__ import annotations

import shutil

import numpy as np
from click.testing import CliRunner
from PIL import Image

from clipswap.cli import main
from clipswap.inference.pipeline import FolderSummary, SwapRequest, run_swap
from clipswap.media.images import read_image
from clipswap.media.video import VideoInfo, VideoReader, VideoWriter

from conftest import shared_data


class _Painter:
    """A stand-in swapper: paints the frame's top-left corner and reports one face (none on a flat grey frame)."""

    def set_source(self, source, number=None):
        pass

    def swap_frame(self, frame):
        if frame.std() < 1:
            return frame, 0
        out = frame.copy()
        out[:8, :8] = 255
        return out, 1


def _picture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (64, 80, 3), dtype=np.uint8)


def test_folder_with_images_and_a_video(tmp_path):
    photos, results = tmp_path / "in", tmp_path / "out"
    photos.mkdir()
    Image.fromarray(_picture(0)).save(photos / "a.png")
    Image.fromarray(_picture(1)).save(photos / "b.jpg")
    Image.fromarray(np.full((64, 80, 3), 128, np.uint8)).save(photos / "flat.png")  # "no face"
    (photos / "notes.txt").write_text("not media")
    with VideoWriter(photos / "clip.mp4", VideoInfo((80, 64), 10.0, 0.3, None), watermark=False) as writer:
        for seed in range(3):
            writer.write(_picture(seed))
    request = SwapRequest(source=photos / "a.png", target=photos, output=results, progress=False)

    summary = run_swap(request, swapper=_Painter())
    assert isinstance(summary, FolderSummary)
    assert (summary.files, summary.swapped, summary.skipped) == (4, 3, 0)
    assert [path.name for path, _ in summary.failures] == ["flat.png"]
    assert sorted(path.name for path in results.iterdir()) == ["a.png", "b.jpg", "clip.mp4"]
    assert (read_image(results / "a.png")[:8, :8] > 240).all()
    with VideoReader(results / "clip.mp4") as reader:
        assert len(list(reader)) == 3

    # A second run resumes: what is written is skipped, the failed file is tried again.
    again = run_swap(request, swapper=_Painter())
    assert (again.swapped, again.skipped, len(again.failures)) == (0, 3, 1)
    assert "3 already written (skipped), 1 failed" in again.describe() and "flat.png" in again.describe()


def _swap(*args):
    return CliRunner().invoke(main, ["swap", "--no-progress", *map(str, args)])


def test_folder_requests_that_cannot_work(tmp_path):
    face = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    photos = tmp_path / "in"
    photos.mkdir()
    result = _swap("-s", face, "-t", photos, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "holds no image or video" in result.output
    shutil.copy(face, photos / "one.jpg")
    result = _swap("-s", face, "-t", photos, "-o", photos)
    assert result.exit_code == 1 and "is the target folder itself" in result.output
    result = _swap("-s", face, "-t", photos, "-o", tmp_path / "out.png")
    assert result.exit_code == 1 and "--output must be a folder too" in result.output
    assert not (tmp_path / "out").exists() and "Traceback" not in result.output


def test_cli_folder_with_the_demo_model(tmp_path):
    """Real faces through the default model: two LFW photos are swapped, a photo without a face fails and makes
    the exit status 1, and the re-run skips the two written files."""
    face = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    photos, results = tmp_path / "in", tmp_path / "out"
    photos.mkdir()
    shutil.copy(shared_data("lfw", "Abdullah_Gul", "Abdullah_Gul_0003.jpg"), photos / "gul.jpg")
    shutil.copy(shared_data("lfw", "Adrien_Brody", "Adrien_Brody_0004.jpg"), photos / "brody.jpg")
    Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(photos / "wall.png")
    result = _swap("-s", face, "-t", photos, "-o", results)
    assert result.exit_code == 1, result.output
    assert "in 2 of 3 file(s)" in result.output and "failed: wall.png" in result.output
    assert "1 of 3 file(s) failed" in result.output
    assert sorted(path.name for path in results.iterdir()) == ["brody.jpg", "gul.jpg"]
    result = _swap("-s", face, "-t", photos, "-o", results)
    assert "2 already written (skipped)" in result.output
