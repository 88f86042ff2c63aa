"""`--model warp`, the source warped onto the target's 68 landmarks and pasted (the input the warp demo read, the
baseline of a network that warps the source itself): the name resolves to no generator, the stand-in returns its
third input, `clipswap swap` on real LFW photos changes only the face and moves it towards the source, and
`clipswap export` refuses it in one sentence (`clipswap evaluate --model warp` is tested with the landmark model's
evaluation, tests/inference/test_landmark_model.py)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from clipswap.cli import main
from clipswap.face.detection import sort_by_area
from clipswap.face.similarity import cosine_similarity
from clipswap.inference.choice import WARP_LABEL, ModelChoice, generator_label, resolve_model
from clipswap.inference.pipeline import NO_WATERMARK_WARNING
from clipswap.inference.swapper import WarpedInput
from clipswap.media.images import read_image

from conftest import require_module, shared_data

LINE = "generator: warp (the source warped onto the target's 68 landmarks, no network), detector: YuNet"
PEOPLE = ("Aaron_Sorkin", "Abdullah_Gul", "Adrien_Brody", "Albert_Costa")


@pytest.fixture(scope="module")
def photos() -> list:
    """The first LFW photo of four different people."""
    require_module("dlib", "the warp places dlib's 68 landmarks")
    return [shared_data("lfw", name, f"{name}_0001.jpg") for name in PEOPLE]


def test_the_name_resolves_to_no_generator():
    choice = resolve_model("warp")
    assert choice == ModelChoice("warp", None)
    assert not choice.is_generator and choice.name == "warp"
    assert generator_label(choice, "ignored") == WARP_LABEL


def test_the_stand_in_returns_its_third_input():
    target, vector, warp = np.zeros((2, 8, 8, 3)), np.ones((2, 128)), np.linspace(-1, 1, 384).reshape(2, 8, 8, 3)
    output = WarpedInput()((target, vector, warp))
    assert output.dtype == np.float32 and np.allclose(output, warp)
    with pytest.raises(ValueError, match="three inputs"):
        WarpedInput()((target, vector))


def test_warp_swap_of_an_lfw_pair(photos, tmp_path):
    from clipswap.evaluation.identity_models import SFaceModel
    from clipswap.face.yunet import YuNetDetector

    source_path, target_path = photos[0], photos[1]
    output = tmp_path / "swapped.png"
    result = CliRunner().invoke(main, ["swap", "--no-progress", "--model", "warp", "-s", str(source_path), "-t",
                                       str(target_path), "-o", str(output), "--detector", "yunet", "--no-watermark"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [LINE, NO_WATERMARK_WARNING, f"swapped 1 face(s); wrote {output}"]
    source, target, swapped = read_image(source_path), read_image(target_path), read_image(output)
    assert swapped.shape == target.shape
    detector, model = YuNetDetector(), SFaceModel()
    face = sort_by_area(detector.detect(target))[0]
    # Only the face changed: the corners of the photo (far from the face box) are the target's.
    x0, y0, x1, y1 = (int(v) for v in face.box)
    outside = np.ones(target.shape[:2], bool)
    outside[max(y0 - 20, 0):y1 + 20, max(x0 - 20, 0):x1 + 20] = False
    assert np.abs(swapped[outside].astype(int) - target[outside].astype(int)).max() <= 2
    changed = np.any(np.abs(swapped.astype(int) - target.astype(int)) > 8, axis=2)
    assert changed.mean() > 0.05

    def embed(image):
        return model.embed(image, sort_by_area(detector.detect(image))[0])

    # The face moved towards the source in SFace.
    source_vector = embed(source)
    assert cosine_similarity(embed(swapped), source_vector) > cosine_similarity(embed(target), source_vector) + 0.05


def test_export_refuses_the_warp(tmp_path):
    output = tmp_path / "exported"
    result = CliRunner().invoke(main, ["export", "--model", "warp", "--format", "savedmodel", "--output", str(output)])
    assert result.exit_code == 1, result.output
    assert result.stderr == ("Error: --model warp is the landmark warp, not a network; there is nothing to "
                             "export\n")
    assert not output.exists()
