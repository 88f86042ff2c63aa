"""The `clipswap evaluate` job (clipswap.evaluation.job) with a model of its own, no swap pipeline: the SwapModel
protocol is all the job needs of the model that makes the missing swaps."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from clipswap.evaluation.job import EvaluationJob, run_evaluation_job
from clipswap.evaluation.swapping import CallablePairs

from conftest import LFW_PEOPLE, require_module, shared_data


class CopyModel:
    """Every swap is a copy of its target: ID similarity of a stranger, SSIM 1, no flicker added."""

    name = "copy"
    training_encoder = None
    untrained = "copy baseline"

    def __init__(self):
        self.videos = []

    def pair_swapper(self):
        return CallablePairs(lambda source, target: target.copy()), {"params": 0, "macs": None}, "generator: copy"

    def swap_video(self, source: Path, target: Path, output: Path, progress: bool) -> None:
        self.videos.append(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(target, output)


def test_a_job_needs_exactly_one_source_of_pairs(tmp_path):
    for job in (EvaluationJob(tmp_path), EvaluationJob(tmp_path, pairs_file=tmp_path / "p.txt", protocol="sample"),
                EvaluationJob(tmp_path, protocol="sample")):
        with pytest.raises(ValueError, match="either a pairs file, or a protocol with an input folder"):
            run_evaluation_job(job)
    assert list(tmp_path.iterdir()) == []


def test_the_model_makes_the_missing_swaps_and_the_lines_come_in_order(tmp_path):
    require_module("imageio_ffmpeg", "cuts the video pair's clip")
    import imageio_ffmpeg

    photos = [sorted(shared_data("lfw", person).glob("*.jpg"))[0] for person in LFW_PEOPLE[:3]]
    clip = tmp_path / "clip.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i",
                    str(shared_data("video", "talking_head_1.mp4")), "-t", "0.4", "-an", str(clip)], check=True)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{photos[0]} {photos[1]} -\n{photos[1]} {photos[2]} -\n{photos[0]} {clip} -\n")
    model, lines = CopyModel(), []
    out = tmp_path / "eval"
    metrics = run_evaluation_job(EvaluationJob(out, pairs_file=pairs, identity_model="sface", progress=False),
                                 lambda: model, announce=lines.append)
    assert lines[0] == "generator: copy"
    assert lines[1].startswith("| video |") and lines[2].endswith("(1 videos)")
    assert lines[3] == (out / "metrics.md").read_text(encoding="utf-8") and lines[4].endswith("(2 pairs)")
    assert len(lines) == 5
    assert model.videos == [out / "videos" / "00001.mp4"]
    (video,) = json.loads((out / "video_metrics.json").read_text())["videos"]
    assert video["frames"] > 5 and video["temporal_difference_excess"] == pytest.approx(0.0, abs=1e-9)
    assert [record["ssim"] for record in metrics["pairs"]] == [1.0, 1.0]
    assert all(Path(record["output"]).parent == out / "swaps" for record in metrics["pairs"])
    assert "copy baseline" in metrics["identity_model_note"]
    assert "| **copy** |" in lines[3]  # the run's row beside the paper's
