"""Which generator a run uses (clipswap.checkpoints.pretrained, clipswap.inference.choice): the published files in
the flat and the release's own layout, the shipped demo as the fallback, `demo` and `landmarks` by name, the missing
demo as one sentence, and the line every run prints. Files are empty stand-ins: resolving only finds files."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipswap.checkpoints import pretrained
from clipswap.checkpoints.pretrained import MissingCheckpointError, find_published, require_published
from clipswap.face.detectors import resolve_detector
from clipswap.inference.choice import (
    LANDMARKS_LABEL,
    ModelChoice,
    detector_label,
    generator_label,
    identity_label,
    models_line,
    resolve_model,
)

RELEASE = {"generator": "clipswap/clipswap.h5", "arcface": "arcface/ArcFace-Res50.h5",
           "retinaface": "retinaface/RetinaFace-Res50.h5"}
FLAT = {"generator": "ClipSwap.h5", "arcface": "ArcFace-Res50.h5", "retinaface": "RetinaFace-Res50.h5"}


@pytest.fixture
def folders(tmp_path, monkeypatch) -> dict[str, Path]:
    """Hermetic checkpoint folders: $CLIPSWAP_CKPT_DIR, ./pretrained_ckpts and the checkout's, plus the demo folder,
    all empty; nothing of the real checkout is seen."""
    named = {name: tmp_path / name / "pretrained_ckpts" for name in ("env", "cwd", "repo")}
    for folder in named.values():
        folder.mkdir(parents=True)
    monkeypatch.setenv("CLIPSWAP_CKPT_DIR", str(named["env"]))
    monkeypatch.chdir(named["cwd"].parent)
    monkeypatch.setattr(pretrained, "REPO_ROOT", named["repo"].parent)
    monkeypatch.setattr(pretrained, "DEMO_DIR", named["repo"] / "demo")
    monkeypatch.delenv("CLIPSWAP_DEMO_DIR", raising=False)
    named["demo"] = named["repo"] / "demo"
    return named


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("key", ["generator", "arcface", "retinaface"])
@pytest.mark.parametrize("layout", [FLAT, RELEASE], ids=["flat", "release"])
@pytest.mark.parametrize("where", ["env", "cwd", "repo"])
def test_published_files_are_found_in_both_layouts(folders, key, layout, where):
    assert find_published(key) is None
    path = touch(folders[where] / layout[key])
    assert find_published(key) == path
    assert require_published(key) == path


def test_flat_layout_wins_in_a_folder_and_earlier_folders_win(folders):
    release = touch(folders["cwd"] / RELEASE["generator"])
    assert find_published("generator") == release
    flat = touch(folders["cwd"] / FLAT["generator"])
    assert find_published("generator") == flat
    # Both spellings in the release's folder (its README says ClipSwap.h5, its scripts clipswap.h5).
    assert {"clipswap/ClipSwap.h5", "clipswap/clipswap.h5"} <= set(pretrained.PUBLISHED["generator"].layouts())
    earlier = touch(folders["env"] / RELEASE["generator"])
    assert find_published("generator") == earlier


def test_missing_published_file_names_both_layouts(folders):
    with pytest.raises(MissingCheckpointError) as caught:
        require_published("arcface")
    message = str(caught.value)
    assert "put it at pretrained_ckpts/ArcFace-Res50.h5 or pretrained_ckpts/arcface/ArcFace-Res50.h5" in message
    assert "CLIPSWAP_CKPT_DIR" in message


def test_default_is_the_published_generator_then_the_demo(folders):
    demo = touch(folders["demo"] / "generator.keras")
    assert resolve_model(None) == ModelChoice("demo", demo)
    assert resolve_model("auto") == ModelChoice("demo", demo)
    published = touch(folders["repo"] / RELEASE["generator"])
    assert resolve_model(None) == ModelChoice("published", published)
    flat = touch(folders["env"] / FLAT["generator"])
    assert resolve_model(None) == ModelChoice("published", flat)
    # Named, the demo is the demo whatever else is installed.
    assert resolve_model("demo") == ModelChoice("demo", demo)


def test_demo_folder_from_the_environment(folders, monkeypatch, tmp_path):
    other = touch(tmp_path / "elsewhere" / "generator.keras")
    monkeypatch.setenv("CLIPSWAP_DEMO_DIR", str(other.parent))
    assert resolve_model("demo") == ModelChoice("demo", other)


def test_missing_demo_is_one_clear_sentence(folders):
    with pytest.raises(MissingCheckpointError) as caught:
        resolve_model("demo")
    message = str(caught.value)
    assert message.startswith(f"the demo generator {folders['demo'] / 'generator.keras'} is missing: it ships with")
    assert message.count(". ") == 0 and message.endswith(".")
    with pytest.raises(MissingCheckpointError) as caught:
        resolve_model(None)
    message = str(caught.value)
    assert message.startswith("no generator was found: the ClipSwap generator (ClipSwap.h5) is not in ")
    assert "the demo generator" in message and "pretrained_ckpts/clipswap/ClipSwap.h5" in message


def test_landmarks_and_explicit_files(folders, tmp_path):
    assert resolve_model("landmarks") == ModelChoice("landmarks", None)
    assert not resolve_model("landmarks").is_generator and resolve_model("landmarks").name == "landmarks"
    mine = touch(tmp_path / "runs" / "g.keras")
    assert resolve_model(mine) == ModelChoice("file", mine)
    assert resolve_model(str(mine)).name == "g.keras"
    with pytest.raises(MissingCheckpointError, match="the generator file .*nowhere.keras does not exist"):
        resolve_model(tmp_path / "nowhere.keras")


def test_detector_auto_takes_retinaface_from_either_layout(folders):
    assert resolve_detector("auto") == ("yunet", None)
    path = touch(folders["cwd"] / RELEASE["retinaface"])
    assert resolve_detector("auto") == ("retinaface", path)
    assert resolve_detector("yunet") == ("yunet", None)


def test_the_line_names_generator_identity_and_detector(folders):
    demo = touch(folders["demo"] / "generator.keras")
    assert models_line(generator_label(ModelChoice("demo", demo), identity_label("sface")), detector_label(
        "yunet", None)) == f"generator: demo ({demo}, SFace identity), detector: YuNet"
    # Paths inside the current folder are shown relative to it.
    arcface = touch(folders["cwd"] / RELEASE["arcface"])
    generator = touch(folders["cwd"] / RELEASE["generator"])
    retina = touch(folders["cwd"] / RELEASE["retinaface"])
    line = models_line(generator_label(ModelChoice("published", generator), identity_label("arcface", arcface)),
                       detector_label("retinaface", retina))
    assert line == ("generator: pretrained_ckpts/clipswap/clipswap.h5 (published, ArcFace-R50 identity from "
                    "pretrained_ckpts/arcface/ArcFace-Res50.h5), detector: RetinaFace-R50 "
                    "(pretrained_ckpts/retinaface/RetinaFace-Res50.h5)")
    assert generator_label(ModelChoice("landmarks", None), "ignored") == LANDMARKS_LABEL
    assert LANDMARKS_LABEL == "landmarks (classical 68-point warp, no network)"
    assert identity_label("sface", clip_variant="tiny") == "SFace identity + CLIP tiny"


def test_an_evaluated_model_pastes_image_and_video_pairs_with_its_detail_and_sharpen(monkeypatch, tmp_path):
    """`clipswap evaluate --detail/--sharpen` reach both the image pairs' swapper and the video pairs' swaps."""
    from clipswap.inference import pipeline
    from clipswap.inference.choice import ModelChoice
    from clipswap.inference.evaluated_model import EvaluatedModel

    seen = {}

    class Stop(Exception):
        pass

    def record(name):
        def called(*args, **kwargs):
            seen[name] = kwargs if name == "image" else args[0]
            raise Stop

        return called

    monkeypatch.setattr(pipeline, "swapper_for", record("image"))
    monkeypatch.setattr(pipeline, "run_swap", record("video"))
    model = EvaluatedModel("demo", ModelChoice("demo", tmp_path / "generator.keras"), None, detail=0.25, sharpen=1.5)
    with pytest.raises(Stop):
        model.pair_swapper()
    with pytest.raises(Stop):
        model.swap_video(tmp_path / "s.png", tmp_path / "t.mp4", tmp_path / "o.mp4", progress=False)
    assert (seen["image"]["detail"], seen["image"]["sharpen"]) == (0.25, 1.5)
    assert (seen["video"].detail, seen["video"].sharpen) == (0.25, 1.5)
