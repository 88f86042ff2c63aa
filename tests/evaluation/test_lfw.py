"""The evaluation on real photos (../shared/data/lfw): baselines whose answers are known.

Each run analyses 12 pairs with SFace, YuNet and dlib's 68 landmarks (about 3 s on a 2-core CPU).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from clipswap.evaluation.pairs import Pair
from clipswap.evaluation.protocols import sample_pairs
from clipswap.evaluation.runner import run_evaluation
from clipswap.face.detection import sort_by_area
from clipswap.face.landmarks68 import Landmarker68
from clipswap.face.yunet import YuNetDetector

from conftest import SHARED_DATA as DATA

LFW = DATA / "lfw"
N_PAIRS = 12

# LFW photos with a clearly turned head (|yaw| about 30-40 degrees by our fit), for the mirror test.
TURNED = [
    "Aaron_Sorkin/Aaron_Sorkin_0001.jpg",
    "Abdullah_Gul/Abdullah_Gul_0001.jpg",
    "Albert_Costa/Albert_Costa_0001.jpg",
    "Adrien_Brody/Adrien_Brody_0001.jpg",
]


@pytest.fixture(scope="module")
def lfw() -> Path:
    if not LFW.is_dir():
        pytest.skip(f"LFW photos are absent: {LFW} (../shared/data is absent)")
    return LFW


@pytest.fixture(scope="module")
def pairs(lfw) -> list[Pair]:
    return sample_pairs(lfw, N_PAIRS, seed=0)


@pytest.fixture(scope="module")
def same_person_pairs(lfw) -> list[Pair]:
    """Source = photo 1 of a person, output = photo 2 of the same person (as a perfect swap would look to an
    identity model), target = a photo of the next person."""
    people = sorted(p for p in lfw.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 3)[:N_PAIRS]
    photos = [sorted(p.glob("*.jpg")) for p in people]
    return [
        Pair(source=photos[i][0], target=photos[(i + 1) % len(people)][2], output=photos[i][1], label=people[i].name)
        for i in range(len(people))
    ]


@pytest.fixture(scope="module")
def as_target(pairs, tmp_path_factory):
    # Outputs left empty and produced by a swap function that returns the target: exercises swap_fn and latency.
    return run_evaluation(pairs, tmp_path_factory.mktemp("as_target"), swap_fn=lambda s, t: t.copy(), progress=False)


@pytest.fixture(scope="module")
def as_source(pairs, tmp_path_factory):
    return run_evaluation(
        [replace(p, output=p.source) for p in pairs], tmp_path_factory.mktemp("as_source"), progress=False
    )


def test_output_equal_to_target_gives_ssim_one_and_zero_pose_and_expression_error(as_target):
    aggregate = as_target["aggregate"]
    assert as_target["failures"] == {}
    for key in ("ssim", "pose_error", "expression_error", "psnr"):
        assert aggregate[key]["n"] == N_PAIRS and aggregate[key]["failed"] == 0
    assert aggregate["ssim"]["value"] == pytest.approx(1.0, abs=1e-12)
    assert aggregate["pose_error"]["value"] == 0.0
    assert aggregate["expression_error"]["value"] == 0.0
    assert aggregate["psnr"]["value"] == math.inf
    assert aggregate["cost"]["latency_n"] == N_PAIRS - 1
    assert all(Path(r["output"]).parent.name == "swaps" for r in as_target["pairs"])


def test_output_equal_to_source_scores_identity_far_above_output_equal_to_target(as_source, as_target):
    source, target = as_source["aggregate"], as_target["aggregate"]
    assert source["id_similarity"]["value"] == pytest.approx(1.0, abs=1e-6)
    assert source["id_similarity"]["value"] > target["id_similarity"]["value"] + 0.5
    assert source["id_retrieval"]["value"] == 100.0
    assert target["id_retrieval"]["value"] < 40.0
    # The two baselines of the closer-to-source figure: every swap and no swap nearer its source than its target.
    assert (source["closer_to_source"]["value"], source["closer_to_source"]["n"]) == (100.0, N_PAIRS)
    assert (target["closer_to_source"]["value"], target["closer_to_source"]["n"]) == (0.0, N_PAIRS)
    # The target keeps pose and expression, the source does not.
    assert source["pose_error"]["value"] > 5.0 and source["expression_error"]["value"] > 3.0
    assert source["ssim"]["value"] < 0.6


def test_retrieval_recognises_another_photo_and_shuffled_sources_fall_to_chance(same_person_pairs, tmp_path):
    true = run_evaluation(same_person_pairs, tmp_path / "true", progress=False)["aggregate"]
    # The gallery has one image per identity, so chance is 1/12; SFace recognises other LFW photos of a person.
    assert true["id_retrieval"]["gallery_identities"] == N_PAIRS
    assert true["id_retrieval"]["value"] >= 75.0
    assert true["id_similarity"]["value"] > 0.4
    # Shuffle which source each output is compared with (a seeded permutation): retrieval drops to chance level.
    order = np.random.default_rng(5).permutation(N_PAIRS)
    shuffled = [
        replace(p, source=same_person_pairs[j].source, label=same_person_pairs[j].label)
        for p, j in zip(same_person_pairs, order, strict=True)
    ]
    expected_hits = int(np.sum(order == np.arange(N_PAIRS)))  # outputs whose source did not change
    result = run_evaluation(shuffled, tmp_path / "shuffled", progress=False)["aggregate"]
    assert result["id_retrieval"]["value"] <= 100.0 * (expected_hits + 1) / N_PAIRS
    assert result["id_similarity"]["value"] < true["id_similarity"]["value"] - 0.2


def test_mirrored_target_gives_opposite_yaw_and_a_matching_pose_error(lfw, tmp_path):
    pairs = []
    for name in TURNED:
        mirror = tmp_path / f"mirror_{Path(name).name}"
        cv2.imwrite(str(mirror), cv2.flip(cv2.imread(str(lfw / name)), 1))
        pairs.append(Pair(source=lfw / name, target=lfw / name, output=mirror))
    records = run_evaluation(pairs, tmp_path / "run", progress=False)["pairs"]
    detector, landmarker = YuNetDetector(), Landmarker68()
    for record in records:
        yaw_target, yaw_swap = record["pose_target"]["yaw"], record["pose_swap"]["yaw"]
        assert abs(yaw_target) > 20.0, record["target"]
        assert np.sign(yaw_swap) == -np.sign(yaw_target)
        assert abs(yaw_swap + yaw_target) < 0.25 * abs(yaw_target)
        # Mirroring negates yaw and roll and keeps pitch, so the error is about 2 |yaw| (roll is small here).
        assert 1.6 * abs(yaw_target) < record["pose_error"] < 2.6 * abs(yaw_target)
        # Sign convention (pose module docstring): yaw > 0 when the nose tip lies left of the outer eye corners'
        # midpoint in the image, i.e. the face turns toward the image's left.
        image = cv2.cvtColor(cv2.imread(record["target"]), cv2.COLOR_BGR2RGB)
        landmarks = landmarker(image, sort_by_area(detector.detect(image))[0])
        assert np.sign(yaw_target) == np.sign(landmarks[[36, 45], 0].mean() - landmarks[30, 0])


def test_faces_not_found_are_counted_and_reported(pairs, tmp_path):
    blank = tmp_path / "blank.png"
    height, width = cv2.imread(str(pairs[0].target)).shape[:2]
    cv2.imwrite(str(blank), np.full((height, width, 3), 128, np.uint8))
    subset = [replace(p, output=blank) for p in pairs[:3]] + [replace(pairs[3], output=tmp_path / "missing.png")]
    out = tmp_path / "run"
    metrics = run_evaluation(subset, out, progress=False)
    aggregate = metrics["aggregate"]
    assert metrics["failures"] == {"swap_no_face": 3, "swap_unreadable": 1}
    for key in ("id_similarity", "id_retrieval", "pose_error", "expression_error"):
        assert aggregate[key]["n"] == 0 and aggregate[key]["failed"] == 4, key
    # The blank images still have SSIM/PSNR against their targets; the unreadable one cannot.
    assert aggregate["ssim"]["n"] == 3 and aggregate["ssim"]["failed"] == 1
    assert all(record["errors"] for record in metrics["pairs"])
    stored = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert stored["failures"] == {"swap_no_face": 3, "swap_unreadable": 1}
    assert stored["identity_model"].startswith("sface")
    report = (out / "metrics.md").read_text(encoding="utf-8")
    assert "swap_no_face 3" in report and "98.91" in report


def test_swaps_the_model_cannot_make_are_counted(pairs, tmp_path):
    metrics = run_evaluation(pairs[:2], tmp_path / "run", swap_fn=lambda s, t: None, progress=False)
    assert metrics["failures"] == {"swap_not_produced": 2}
    assert metrics["aggregate"]["ssim"]["failed"] == 2 and metrics["aggregate"]["id_retrieval"]["n"] == 0
    assert all(record["errors"] == ["no swap output"] for record in metrics["pairs"])


def test_dlib_identity_model_separates_people(same_person_pairs, tmp_path):
    pytest.importorskip("dlib")
    metrics = run_evaluation(same_person_pairs[:6], tmp_path / "dlib", identity_model="dlib", progress=False)
    assert metrics["identity_model"].startswith("dlib")
    assert metrics["aggregate"]["id_retrieval"]["value"] >= 80.0


def test_each_image_is_decoded_and_detected_once_whatever_its_roles(lfw, tmp_path, monkeypatch):
    """A photo that is the source of one pair, the target of another and an output of a third is read and detected
    once; SSIM/PSNR reuse the decoded images."""
    from clipswap.evaluation import runner

    photos = [lfw / name for name in TURNED[:3]]
    pairs = [Pair(photos[0], photos[1], photos[2]), Pair(photos[1], photos[2], photos[0]),
             Pair(photos[2], photos[0], photos[1])]
    reads, detections = [], []
    read_image, detect = runner.read_image, YuNetDetector.detect
    monkeypatch.setattr(runner, "read_image", lambda path: reads.append(Path(path).name) or read_image(path))
    monkeypatch.setattr(YuNetDetector, "detect", lambda self, image: detections.append(1) or detect(self, image))
    metrics = run_evaluation(pairs, tmp_path, progress=False)
    assert sorted(reads) == sorted(p.name for p in photos)
    assert len(detections) == 3
    assert all("ssim" in r and "id_similarity" in r and "pose_error" in r for r in metrics["pairs"])
