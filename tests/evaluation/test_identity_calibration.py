"""The ID similarity is also reported on a calibrated scale (0 = a typical stranger, 1 = a typical
photo of the same person, from LFW) with a verification rate at each model's equal-error threshold, so that dlib's
raw cosine (two strangers: about 0.84) no longer reads like a match. Output = target scores clearly below
output = source for every identity model."""

from __future__ import annotations

import pytest

from clipswap.evaluation.identity_models import CALIBRATION, load_identity_model
from clipswap.evaluation.pairs import Pair
from clipswap.evaluation.runner import run_evaluation

from conftest import require_module, shared_data

PEOPLE = ("Aaron_Sorkin", "Abdullah_Gul", "Adrien_Brody", "Al_Davis", "Aicha_El_Ouafi", "Akbar_Hashemi_Rafsanjani")


def _photo(person: str):
    return sorted(shared_data("lfw", person).glob("*.jpg"))[0]


@pytest.mark.parametrize("model_name", ["sface", "dlib"])
def test_target_scores_far_below_source(model_name, tmp_path):
    require_module("dlib", "the evaluation metrics use dlib's landmarks")
    model = load_identity_model(model_name)
    sources = [_photo(person) for person in PEOPLE]
    targets = sources[1:] + sources[:1]
    rows = {}
    for name, outputs in (("target", targets), ("source", sources)):
        pairs = [Pair(source, target, output) for source, target, output in zip(sources, targets, outputs,
                                                                                 strict=True)]
        aggregate = run_evaluation(pairs, tmp_path / name, identity_model=model, progress=False)["aggregate"]
        rows[name] = {key: aggregate[key]["value"] for key in ("id_similarity", "id_similarity_calibrated",
                                                               "id_verified")}
    assert rows["source"]["id_verified"] == 100.0
    assert rows["target"]["id_verified"] <= 100.0 / len(PEOPLE)
    assert rows["source"]["id_similarity_calibrated"] > 1.0
    assert rows["target"]["id_similarity_calibrated"] < 0.5
    assert rows["source"]["id_similarity_calibrated"] - rows["target"]["id_similarity_calibrated"] > 0.8
    if model_name == "dlib":
        # The raw cosine is what misled: strangers sit high on it.
        assert rows["target"]["id_similarity"] > 0.75


def test_calibrations_are_ordered():
    for calibration in CALIBRATION.values():
        assert calibration.impostor_mean < calibration.threshold < calibration.genuine_mean
        assert calibration.scale(calibration.impostor_mean) == pytest.approx(0.0)
        assert calibration.scale(calibration.genuine_mean) == pytest.approx(1.0)
