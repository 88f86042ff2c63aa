"""`clipswap pairs` on a small LFW subset, the pair dataset, the teacher loss and training on teacher pairs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from clipswap.cli import main
from clipswap.config import ModelConfig
from clipswap.face.landmark_swap import swap_region
from clipswap.facedata.pairs import (
    FACE_LANDMARKS,
    HELDOUT_LANDMARKS,
    HELDOUT_PAIRS,
    MANIFEST,
    PairsError,
    build_pairs,
    choose_mates,
    heldout_landmarks,
    heldout_shards,
    pair_shards,
    pairs_have_landmarks,
    pairs_have_mates,
    pairs_have_warps,
    parse_pair,
)
from clipswap.facedata.shards import iterate_records
from clipswap.losses.reconstruction import teacher_loss
from clipswap.losses.tf_only import identity_augment
from clipswap.training.data import make_pair_dataset

from conftest import LFW_PEOPLE, align_lfw_subset, require_module, shared_data

SIZE = 64


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    require_module("dlib", "the teacher's 68 landmarks come from dlib's shape predictor")
    root = tmp_path_factory.mktemp("pairs")
    align_lfw_subset(root, SIZE)
    return root


@pytest.fixture(scope="module")
def pairs(aligned):
    manifest = build_pairs(aligned / "aligned", aligned / "pairs", count=24, heldout=2, seed=5, shard_size=10,
                           progress=False)
    return aligned / "pairs", manifest


def _decode(encoded: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_heldout_identities_never_appear_in_training_pairs(pairs):
    folder, manifest = pairs
    identities = json.loads((folder.parent / "aligned" / "identities.json").read_text())
    held = set(manifest["heldout_identities"])
    assert len(held) == 2 and held <= set(LFW_PEOPLE)
    held_labels = {identities.index(name) for name in held}
    records = [parse_pair(r) for r in tf.data.TFRecordDataset(pair_shards(folder))]
    assert len(records) == manifest["pairs"] == 24 - manifest["pairs_without_teacher"] > 0
    assert len(pair_shards(folder)) == -(-len(records) // 10)
    for record in records:
        target, source = int(record["target_label"]), int(record["source_label"])
        assert target != source and not {target, source} & held_labels
    held_faces = list(iterate_records(heldout_shards(folder)))
    assert {r.identity for r in held_faces} == held and len(held_faces) == manifest["heldout_faces"]


def test_heldout_evaluation_pairs_are_different_people_of_the_heldout_set(pairs):
    folder, manifest = pairs
    lines = [line.split("\t") for line in (folder / HELDOUT_PAIRS).read_text().splitlines()
             if line and not line.startswith("#")]
    assert len(lines) == len(manifest["heldout_identities"])
    people = [(src.split("/")[-2], tgt.strip().split("/")[-2]) for src, tgt in lines]
    assert all(a != b for a, b in people)
    assert {a for a, _ in people} == set(manifest["heldout_identities"])
    photos = [p for line in lines for p in line]
    assert len(set(photos)) == len(photos)


def test_teacher_is_the_target_outside_the_face_and_nearer_the_source_inside(pairs):
    folder, _ = pairs
    record = next(iter(tf.data.TFRecordDataset(pair_shards(folder))))
    pair = parse_pair(record)
    target, source, teacher = (_decode(pair[k].numpy()) for k in ("target", "source", "teacher"))
    assert teacher.shape == target.shape == (SIZE, SIZE, 3)
    changed = np.abs(teacher.astype(int) - target.astype(int)).max(axis=-1) > 0
    # Only the face hull changes: the borders of the crop (background, hair) are the target's.
    assert not changed[:4].any() and not changed[:, :4].any() and changed.mean() > 0.1
    centre = np.s_[SIZE // 3: 2 * SIZE // 3, SIZE // 3: 2 * SIZE // 3]
    assert np.abs(teacher[centre].astype(int) - target[centre].astype(int)).mean() > 2.0


def test_warped_source_is_the_target_outside_the_face_and_the_teachers_warp_inside(pairs):
    """The source_warp input: the teacher's colour-matched warp pasted with a hard edge, no Poisson solve."""
    folder, manifest = pairs
    assert manifest["warped"] is True and pairs_have_warps(folder)
    checked = 0
    for record in tf.data.TFRecordDataset(pair_shards(folder)):
        pair = parse_pair(record)
        target, teacher, warped = (_decode(pair[k].numpy()) for k in ("target", "teacher", "warped"))
        changed = np.abs(warped.astype(int) - target.astype(int)).max(axis=-1) > 0
        assert not changed[:4].any() and not changed[:, :4].any() and changed.mean() > 0.1
        # The teacher changes the same pixels (its Poisson solve stays inside the same region) and is nearer the
        # paste than the target is there: both carry the same warped face.
        taught = np.abs(teacher.astype(int) - target.astype(int)).max(axis=-1) > 0
        assert not (taught & ~changed).any()
        inside = changed
        assert (np.abs(teacher.astype(int) - warped.astype(int))[inside].mean()
                < np.abs(target.astype(int) - warped.astype(int))[inside].mean())
        checked += 1
        if checked == 4:
            break
    assert checked == 4


def _stored_points(folder: Path) -> np.ndarray:
    """Every aligned face's 68 landmarks as fractions of the crop side, from face_landmarks.npz: [N, 136]."""
    with np.load(folder / FACE_LANDMARKS) as stored:
        return stored["points"].reshape(-1, 136) / SIZE


def _is_a_stored_face(points: np.ndarray, stored: np.ndarray) -> bool:
    return bool(np.abs(stored - np.asarray(points).reshape(1, 136)).max(axis=1).min() < 1e-4)


def test_pair_records_hold_each_crops_landmarks_where_its_warp_was_pasted(pairs):
    """target_68 / source_68 / mate_68: the faces' rows of face_landmarks.npz (fractions of the crop); the landmark
    warp changed the target only inside its landmarks' swap region."""
    folder, manifest = pairs
    assert manifest["landmarks"] is True and pairs_have_landmarks(folder)
    stored = _stored_points(folder)
    with_mate = 0
    for record in tf.data.TFRecordDataset(pair_shards(folder)):
        pair = parse_pair(record)
        target_68, source_68 = pair["target_68"].numpy(), pair["source_68"].numpy()
        assert _is_a_stored_face(target_68, stored) and _is_a_stored_face(source_68, stored)
        assert np.abs(target_68 - source_68).max() > 1e-3
        if pair["mate"].numpy():
            with_mate += 1
            assert _is_a_stored_face(pair["mate_68"].numpy(), stored)
        else:
            assert not pair["mate_68"].numpy().any()
        target, warped = (_decode(pair[k].numpy()) for k in ("target", "warped"))
        changed = np.abs(warped.astype(int) - target.astype(int)).max(axis=-1) > 0
        region = swap_region(target_68.reshape(68, 2) * SIZE, (SIZE, SIZE)) > 0
        assert changed.mean() > 0.1 and (changed & ~cv2.dilate(region.astype(np.uint8), np.ones((3, 3)))).mean() < 0.01
    assert with_mate > 0
    stale = folder.parent / "stale_manifest"
    stale.mkdir(exist_ok=True)
    (stale / MANIFEST).write_text(json.dumps({"warped": True, "mates": True}))
    assert not pairs_have_landmarks(stale)


def test_pair_dataset_gives_the_landmarks_of_whatever_became_the_source(pairs):
    folder, _ = pairs
    stored = _stored_points(folder)
    batch = next(iter(make_pair_dataset(pair_shards(folder), 8, SIZE, 0.5, True, 3, 8, mates=True, landmarks=True)))
    assert batch["target_68"].shape == batch["source_68"].shape == (8, 68, 2)
    plain = next(iter(make_pair_dataset(pair_shards(folder), 8, SIZE, 0.5, True, 3, 8, mates=True)))
    assert "target_68" not in plain
    same, has_mate = batch["same"].numpy() > 0, batch["has_mate"].numpy() > 0
    assert same.any() and (~same).any()
    for i in range(8):
        target_68, source_68 = batch["target_68"][i].numpy(), batch["source_68"][i].numpy()
        assert _is_a_stored_face(target_68, stored) and _is_a_stored_face(source_68, stored)
        if same[i] and not has_mate[i]:
            np.testing.assert_array_equal(source_68, target_68)
        else:
            assert np.abs(source_68 - target_68).max() > 1e-3


def test_source_glasses_draw_on_a_copy_of_the_sources_and_need_landmarks(pairs):
    """augmentation.source_glasses adds "drawn_source", the source after the jitter with glasses drawn: the same
    stream without it gives the same targets, teachers, warps, landmarks and sources, and drawn sources that differ
    from them only where glasses were drawn (around the eyes, never at the mouth)."""
    folder, _ = pairs
    args = (pair_shards(folder), 8, SIZE, 0.5, True, 3, 8)
    kwargs = {"warped": True, "mates": True, "landmarks": True}
    plain = next(iter(make_pair_dataset(*args, **kwargs)))
    drawn = next(iter(make_pair_dataset(*args, **kwargs, source_glasses=1.0)))
    assert "drawn_source" not in plain
    for key in ("target", "source", "teacher", "warped", "target_68", "source_68", "same"):
        np.testing.assert_array_equal(drawn[key].numpy(), plain[key].numpy(), err_msg=key)
    changed = np.abs(drawn["drawn_source"].numpy() - plain["source"].numpy()).max(axis=-1) > 1e-6
    points = plain["source_68"].numpy() * SIZE - 0.5
    for i in range(8):
        assert changed[i].any()
        mouth = np.round(points[i, 60:68].mean(axis=0)).astype(int)
        assert not changed[i, mouth[1], mouth[0]]
    with pytest.raises(ValueError, match="source_glasses must be in \\[0, 1\\] and needs landmarks"):
        make_pair_dataset(*args, warped=True, source_glasses=0.5)


def test_heldout_faces_keep_their_68_landmarks(pairs):
    folder, manifest = pairs
    points = heldout_landmarks(folder)
    held = list(iterate_records(heldout_shards(folder)))
    assert (folder / HELDOUT_LANDMARKS).is_file() and set(points) <= {r.path for r in held}
    assert len(points) >= len(held) - manifest["faces_without_landmarks"] and points
    for value in points.values():
        assert value.shape == (68, 2) and np.isfinite(value).all()
        assert (value > -SIZE).all() and (value < 2 * SIZE).all()
    # Each face's landmark region covers the middle of its aligned crop (the face is centred by the template).
    region = swap_region(next(iter(points.values())), (SIZE, SIZE))
    assert region[SIZE // 2, SIZE // 2] == 255
    assert heldout_landmarks(folder / "absent") == {}


def test_pair_dataset_gives_the_warped_source_with_the_targets_jitter(pairs):
    folder, _ = pairs
    plain = next(iter(make_pair_dataset(pair_shards(folder), 4, SIZE, 0.5, True, 3, 8)))
    batch = next(iter(make_pair_dataset(pair_shards(folder), 4, SIZE, 0.5, True, 3, 8, warped=True)))
    assert "warped" not in plain and batch["warped"].shape == (4, SIZE, SIZE, 3)
    np.testing.assert_array_equal(batch["teacher"], plain["teacher"])
    same = batch["same"].numpy() > 0
    for i in range(4):
        target, warped = batch["target"][i].numpy(), batch["warped"][i].numpy()
        if same[i]:
            np.testing.assert_array_equal(warped, target)
        else:
            # Outside the face the warped source is the target, jittered alike (the corner pixels agree up to the
            # contrast change about each image's own mean).
            np.testing.assert_allclose(warped[:3, :3], target[:3, :3], atol=0.02)
            assert np.abs(warped - target).max() > 0.1


def test_pair_dataset_same_pairs_use_the_target_as_source_and_teacher(pairs):
    folder, _ = pairs
    dataset = make_pair_dataset(pair_shards(folder), batch_size=4, image_size=SIZE, same_identity_prob=0.5,
                                jitter=True, seed=3, shuffle_buffer=8)
    batch = next(iter(dataset))
    assert batch["teacher"].shape == batch["target"].shape == (4, SIZE, SIZE, 3)
    same = batch["same"].numpy() > 0
    assert same.any()
    for i in range(4):
        if same[i]:
            np.testing.assert_array_equal(batch["source"][i], batch["target"][i])
            np.testing.assert_array_equal(batch["teacher"][i], batch["target"][i])
            assert batch["source_label"][i] == batch["target_label"][i]
        else:
            assert batch["source_label"][i] != batch["target_label"][i]
    again = next(iter(make_pair_dataset(pair_shards(folder), 4, SIZE, 0.5, True, 3, 8)))
    np.testing.assert_array_equal(again["teacher"], batch["teacher"])


def test_choose_mates_draws_another_photo_of_the_same_person():
    labels = [0, 0, 1, 2, 2, 2]
    targets = [0, 1, 2, 4, 5] + [3] * 20
    mates = choose_mates(labels, targets, seed=4)
    assert mates[2] is None  # person 1 has one photo
    for target, mate in zip(targets, mates, strict=True):
        if target != 2:
            assert mate != target and labels[mate] == labels[target]
    assert set(mates[5:]) == {4, 5}  # both other photos of person 2 get drawn for target 3
    assert choose_mates(labels, [0, 3, 4], seed=4) == choose_mates(labels, [0, 3, 4], seed=4)


def test_pair_records_carry_another_photo_of_the_targets_person(pairs, aligned):
    folder, manifest = pairs
    assert pairs_have_mates(folder) and manifest["mates"]
    assert manifest["pairs_with_other_photo"] + manifest["pairs_reusing_photo"] == manifest["pairs"]
    assert manifest["pairs_with_other_photo"] > 0
    faces = {r.image: r for r in iterate_records(aligned / "aligned")}
    held = set(manifest["heldout_identities"])
    with_mate = 0
    for serialized in tf.data.TFRecordDataset(pair_shards(folder)):
        pair = parse_pair(serialized)
        target, mate = faces[pair["target"].numpy()], pair["mate"].numpy()
        if not mate:
            assert not pair["mate_warped"].numpy()
            continue
        with_mate += 1
        other = faces[mate]
        assert other.identity == target.identity and other.path != target.path
        assert other.identity not in held
        warped = _decode(pair["mate_warped"].numpy()).astype(np.float32)
        own = _decode(pair["target"].numpy()).astype(np.float32)
        assert np.abs(warped[:4, :4] - own[:4, :4]).max() == 0  # the target outside the face, the mate inside
        assert np.abs(warped - own).mean() > 1.0
    assert with_mate == manifest["pairs_with_other_photo"]
    stored = np.load(folder / FACE_LANDMARKS)
    assert stored["points"].shape == (len(faces), 68, 2)
    assert int(np.isnan(stored["points"][:, 0, 0]).sum()) == manifest["faces_without_landmarks"]
    assert {str(p) for p, h in zip(stored["path"], stored["heldout"], strict=True) if h} == {
        r.path for r in faces.values() if r.identity in held}


def test_pair_dataset_same_pairs_take_another_photo_as_the_source(pairs):
    folder, _ = pairs
    batch = next(iter(make_pair_dataset(pair_shards(folder), 8, SIZE, 1.0, False, 3, 8, warped=True, mates=True)))
    assert (batch["same"].numpy() == 1).all()
    np.testing.assert_array_equal(batch["teacher"], batch["target"])
    np.testing.assert_array_equal(batch["source_label"], batch["target_label"])
    reused = batch["same_photo"].numpy() > 0
    assert (~reused).any()
    for i in range(8):
        source, target = batch["source"][i].numpy(), batch["target"][i].numpy()
        if reused[i]:
            np.testing.assert_array_equal(source, target)
            np.testing.assert_array_equal(batch["warped"][i], target)
        else:
            # Another photo of the person: a different picture, not the target (pixel mean difference > 2 levels).
            assert np.abs(source - target).mean() > 2 / 127.5
            np.testing.assert_array_equal(batch["warped"][i][:3, :3], target[:3, :3])
    # The same draw with jitter: the mate takes the source's colour change, so it differs from the plain decode.
    jittered = next(iter(make_pair_dataset(pair_shards(folder), 8, SIZE, 1.0, True, 3, 8, mates=True)))
    assert jittered["source"].shape == (8, SIZE, SIZE, 3)
    # A paired discriminator's real pairs: the mate rides along with every sample, a same-identity one's source.
    np.testing.assert_array_equal(batch["has_mate"], 1.0 - batch["same_photo"].numpy())
    np.testing.assert_array_equal(batch["mate"].numpy()[~reused], batch["source"].numpy()[~reused])
    crossed = next(iter(make_pair_dataset(pair_shards(folder), 8, SIZE, 0.0, False, 3, 8, mates=True)))
    has_mate = crossed["has_mate"].numpy() > 0
    assert has_mate.any() and (crossed["same"].numpy() == 0).all()
    for i in np.flatnonzero(has_mate):
        mate, source, target = (crossed[key][i].numpy() for key in ("mate", "source", "target"))
        assert np.abs(mate - source).mean() > 2 / 127.5 and np.abs(mate - target).mean() > 2 / 127.5


def test_bad_pairs_input_is_one_sentence(aligned, tmp_path):
    with pytest.raises(PairsError, match="two or more faces"):
        build_pairs(aligned / "aligned", tmp_path / "p", count=4, heldout=50, progress=False)
    result = CliRunner().invoke(main, ["pairs", "--data", str(tmp_path / "missing"), "--output", str(tmp_path / "o")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cannot read the aligned shards" in result.output
    assert not (tmp_path / "o" / MANIFEST).exists()


def test_teacher_loss_and_identity_augment():
    teacher = tf.zeros([2, 8, 8, 3])
    swap = tf.concat([tf.ones([1, 8, 8, 3]), -tf.ones([1, 8, 8, 3]) * 0.5], axis=0)
    assert float(teacher_loss(teacher, swap)) == pytest.approx(0.75)
    # Face region only: sample 0's teacher differs from its target in one pixel (all three channels), sample 1 is a
    # same pair (teacher = target): only that pixel of sample 0 counts.
    target = tf.zeros([2, 8, 8, 3])
    face = tf.tensor_scatter_nd_update(target, [[0, 2, 3, 0], [0, 2, 3, 1], [0, 2, 3, 2]], [0.5, 0.5, 0.5])
    assert float(teacher_loss(face, swap, target)) == pytest.approx(0.5)
    assert float(teacher_loss(target, swap, target)) == 0.0
    # With the background: plus the mean outside the face, per sample (sample 0: |0 - 1| = 1 over its other 63
    # pixels; sample 1, a same pair: |0 + 0.5| over all), averaged over the batch: 0.5 + (1 + 0.5) / 2.
    assert float(teacher_loss(face, swap, target, background=True)) == pytest.approx(1.25)
    with pytest.raises(ValueError, match="B, H, W, C"):
        teacher_loss(tf.zeros([8, 8, 3]), tf.zeros([8, 8, 3]))
    images = tf.random.stateless_uniform([3, 32, 32, 3], seed=[1, 2], minval=-1, maxval=1)
    moved = identity_augment(images, seed=[4, 5])
    assert moved.shape == images.shape
    np.testing.assert_array_equal(moved, identity_augment(images, seed=[4, 5]))
    # Each output is the input shifted by one integer offset (reflected at the border), perhaps mirrored: its
    # centre appears in the input exactly.
    for i in range(3):
        out = moved[i].numpy()
        candidates = [images[i].numpy(), images[i].numpy()[:, ::-1]]
        assert any(_contains(c, out[4:28, 4:28]) for c in candidates)
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(identity_augment(images, seed=[4, 5]))
    assert float(tf.reduce_sum(tf.abs(tape.gradient(total, images)))) > 0


def _contains(image: np.ndarray, patch: np.ndarray) -> bool:
    h, w = patch.shape[:2]
    return any(np.array_equal(image[y:y + h, x:x + w], patch)
               for y in range(image.shape[0] - h + 1) for x in range(image.shape[1] - w + 1))


@pytest.mark.slow
def test_training_on_teacher_pairs_runs_and_reports_the_teacher_term(pairs, tmp_path):
    folder, _ = pairs
    run = tmp_path / "run"
    args = ["train", "--data", str(folder), "--run-dir", str(run), "--preset", "tiny", "--steps", "3",
            "--set", "weights.teacher=5", "--set", "id_augment=true", "--set", "eval_every=3",
            "--set", "eval_batch_size=2", "--set", "image_every=3", "--set", "log_every=1", "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(np.isfinite(row["teacher"]) and row["teacher"] > 0 for row in rows)
    assert (run / "generator.keras").is_file()
    # Aligned shards without teachers cannot train the teacher term.
    result = CliRunner().invoke(main, [*args[:2], str(folder.parent / "aligned"), "--run-dir", str(tmp_path / "r2"),
                                       *args[5:]])
    assert result.exit_code == 1 and "clipswap pairs" in result.output


@pytest.mark.slow
def test_a_pre_swap_generator_trains_on_pairs_only(pairs, tmp_path):
    """A tiny pre_swap + residual G trains 2 steps on teacher pairs (G reads the teachers); on aligned shards without
    teachers the run is refused with one sentence."""
    folder, _ = pairs
    args = ["--preset", "tiny", "--steps", "2", "--set", "model.pre_swap=landmarks", "--set", "model.residual=true",
            "--set", "eval_every=2", "--set", "eval_batch_size=2", "--set", "image_every=2", "--no-progress"]
    result = CliRunner().invoke(main, ["train", "--data", str(folder), "--run-dir", str(tmp_path / "run"), *args])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "run" / "generator.json").read_text())
    written = ModelConfig.from_dict(manifest["model"])  # the named form: conditioning "refine_landmark_swap"
    assert written.pre_swap == "landmarks" and manifest["model"]["residual"] is True
    result = CliRunner().invoke(main, ["train", "--data", str(folder.parent / "aligned"), "--run-dir",
                                       str(tmp_path / "r2"), *args])
    assert result.exit_code == 1 and "reads the landmark swap" in result.output and "clipswap pairs" in result.output


def _pairs_made_before(folder: Path, tmp_path: Path, field: str) -> Path:
    """A copy of the pairs folder whose manifest does not say `field` (pairs made before its records held it)."""
    old = tmp_path / f"pairs_without_{field}"
    shutil.copytree(folder, old)
    stored = json.loads((old / MANIFEST).read_text())
    del stored[field]
    (old / MANIFEST).write_text(json.dumps(stored))
    return old


@pytest.mark.slow
def test_a_source_warp_generator_trains_on_warped_pairs_and_reports_its_heldout_figures(pairs, tmp_path):
    """A tiny source_warp G trains 2 steps on pairs (G reads the warps); its held-out figures come from the held-out
    faces' warps; on aligned shards, or on pairs made before the warps existed, the run is refused."""
    folder, _ = pairs
    args = ["--preset", "tiny", "--steps", "2", "--set", "model.source_image=true", "--set", "model.source_warp=true",
            "--set", "model.residual=true", "--set", "eval_every=2", "--set", "eval_batch_size=2",
            "--set", "image_every=2", "--no-progress"]
    result = CliRunner().invoke(main, ["train", "--data", str(folder), "--run-dir", str(tmp_path / "run"), *args])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "run" / "generator.json").read_text())
    assert ModelConfig.from_dict(manifest["model"]).source_warp is True
    rows = [json.loads(line) for line in (tmp_path / "run" / "heldout.jsonl").read_text().splitlines()]
    assert rows and all(np.isfinite(row["heldout_id_loss"]) for row in rows)
    result = CliRunner().invoke(main, ["train", "--data", str(folder.parent / "aligned"), "--run-dir",
                                       str(tmp_path / "r2"), *args])
    assert result.exit_code == 1 and "warped source" in result.output and "clipswap pairs" in result.output
    old = _pairs_made_before(folder, tmp_path, "warped")
    result = CliRunner().invoke(main, ["train", "--data", str(old), "--run-dir", str(tmp_path / "r3"), *args])
    assert result.exit_code == 1 and "made by this version" in result.output
    assert not (tmp_path / "r3").exists()


def _pretrain_flow_tool():
    """tools/pretrain_flow.py as a module (tools/ is no package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "pretrain_flow", Path(__file__).resolve().parents[2] / "tools" / "pretrain_flow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _swap_two_lfw_photos(model: Path, tmp_path: Path):
    """`clipswap swap` of one LFW person's face onto another's photo with `model`: the CliRunner result, checked for
    exit 0 and an output of the target's size."""
    photos = sorted(shared_data("lfw", "Abdullah_Gul").glob("*.jpg"))[:1] + sorted(
        shared_data("lfw", "Adrien_Brody").glob("*.jpg"))[:1]
    output = tmp_path / "swap.png"
    result = CliRunner().invoke(main, ["swap", "--no-progress", "--model", str(model), "-s", str(photos[0]), "-t",
                                       str(photos[1]), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(output)).shape == cv2.imread(str(photos[1])).shape
    return result


@pytest.mark.slow
def test_a_source_flow_generator_trains_on_pairs_and_swaps_a_photo_without_landmarks(pairs, tmp_path):
    """A tiny source_flow G trains 2 steps on pairs (the flow term reads the records' landmarks and warps); its
    exported generator swaps real photos through `clipswap swap`, whose swapper then needs no landmark model;
    pairs made before the landmarks existed are refused in one sentence."""
    from clipswap.checkpoints.native import load_generator
    from clipswap.face.detectors import build_detector
    from clipswap.inference.swapper import FaceSwapper

    folder, _ = pairs
    args = ["--preset", "tiny", "--steps", "2", "--set", "model.source_image=true", "--set", "model.source_flow=true",
            "--set", "model.residual=true", "--set", "weights.flow=1", "--set", "log_every=1", "--set", "eval_every=2",
            "--set", "eval_batch_size=2", "--set", "image_every=2", "--no-progress"]
    pretrain_flow = _pretrain_flow_tool()
    flow = tmp_path / "flow" / "generator.keras"
    assert pretrain_flow.main(["--pairs", str(folder), "--output", str(flow), "--preset", "tiny", "--steps", "3",
                               "--batch-size", "4"]) == 0
    pretrained = np.asarray(load_generator(flow).model.get_layer("generator_flow_field").kernel)
    assert np.abs(pretrained).max() > 0  # the last conv starts at zero: the pretraining moved it
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--data", str(folder), "--run-dir", str(run), *args,
                                       "--init-generator", str(flow)])
    assert result.exit_code == 0, result.output
    assert ModelConfig.from_dict(json.loads((run / "generator.json").read_text())["model"]).source_flow is True
    trained = np.asarray(load_generator(run / "generator.keras").model.get_layer("generator_flow_field").kernel)
    assert np.abs(trained - pretrained).max() < 0.5 * np.abs(pretrained).max()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(np.isfinite(row["flow"]) and row["flow"] > 0 for row in rows if "flow" in row)
    assert any("flow" in row for row in rows)
    swapper = FaceSwapper.from_checkpoint(load_generator(run / "generator.keras"), build_detector("yunet"))
    assert swapper.source_image and not swapper.source_warp and swapper.landmarker is None
    result = _swap_two_lfw_photos(run / "generator.keras", tmp_path)
    old = _pairs_made_before(folder, tmp_path, "landmarks")
    result = CliRunner().invoke(main, ["train", "--data", str(old), "--run-dir", str(tmp_path / "r2"), *args])
    assert result.exit_code == 1 and "landmarks and the landmark warp" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r2").exists()


@pytest.mark.slow
def test_a_keypoint_flow_generator_starts_from_the_geometry_network_trains_and_swaps(pairs, tmp_path):
    """tools/pretrain_flow.py starts the keypoint flow from the shipped geometry network and fine-tunes it; a tiny
    target+keypoint_flow G trains from it and swaps real photos with `--runtime auto`, which runs it on OpenVINO where
    installed (the spline's solve is matrix products, which the converter takes) and says so."""
    import importlib.util

    from clipswap.checkpoints.geometry import load_geometry
    from clipswap.checkpoints.native import load_generator

    folder, _ = pairs
    pretrain_flow = _pretrain_flow_tool()
    flow = tmp_path / "flow" / "generator.keras"
    assert pretrain_flow.main(["--pairs", str(folder), "--output", str(flow), "--preset", "tiny", "--steps", "2",
                               "--batch-size", "4", "--conditioning", "target+keypoint_flow"]) == 0
    shipped = load_geometry().get_weights()
    started = load_generator(flow).model.get_layer("generator_flow_geometry").get_weights()
    assert len(started) == len(shipped)
    moved = [np.abs(a - b).max() for a, b in zip(started, shipped, strict=True)]
    assert 0 < max(moved) < 0.05 * max(np.abs(w).max() for w in shipped)  # fine-tuned from it, not from scratch
    run = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "train", "--data", str(folder), "--run-dir", str(run), "--preset", "tiny", "--steps", "2", "--set",
        "model.conditioning=target+keypoint_flow", "--set", "weights.flow=1", "--set", "log_every=1", "--set",
        "eval_every=2", "--set", "augmentation.source_glasses=0.5", "--set",
        "eval_batch_size=2", "--set", "image_every=2", "--no-progress", "--init-generator", str(flow)])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["augmentation"]["source_glasses"] == 0.5
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("flow" in row for row in rows) and all(np.isfinite(row["flow"]) for row in rows if "flow" in row)
    result = _swap_two_lfw_photos(run / "generator.keras", tmp_path)
    if importlib.util.find_spec("openvino") is not None:
        assert "runtime: openvino fp32" in result.output, result.output


@pytest.mark.slow
def test_a_heatmap_geometry_file_starts_a_heatmap_keypoint_flow_that_reloads(pairs, tmp_path, capsys):
    """tools/pretrain_flow.py --geometry with a heatmap network at 64 px: the generator's keypoint network is that
    network (ModelConfig.keypoint_head and keypoint_size follow the file), started from its weights, the tool names
    the two keys a training run needs, and the checkpoint it writes reloads with the heatmap network inside."""
    from clipswap.checkpoints.geometry import load_geometry, save_geometry
    from clipswap.checkpoints.native import load_generator
    from clipswap.models.geometry import GeometryNet

    folder, _ = pairs
    net = GeometryNet(head="heatmap", input_size=64, name="geometry")
    # Moved off the initialisation, so weights the tool failed to copy would not match the file's by the seed.
    for variable in net.trainable_variables:
        variable.assign(variable + np.random.default_rng(len(variable.path)).normal(0, 0.05, variable.shape))
    save_geometry(net, tmp_path / "geometry.keras")
    flow = tmp_path / "flow" / "generator.keras"
    assert _pretrain_flow_tool().main([
        "--pairs", str(folder), "--output", str(flow), "--preset", "tiny", "--steps", "1", "--batch-size", "2",
        "--conditioning", "target+keypoint_flow", "--geometry", str(tmp_path / "geometry.keras")]) == 0
    assert "--set model.keypoint_head=heatmap --set model.keypoint_size=64" in capsys.readouterr().out
    loaded = load_generator(flow)
    assert (loaded.config.keypoint_head, loaded.config.keypoint_size) == ("heatmap", 64)
    started = loaded.model.get_layer("generator_flow_geometry")
    assert isinstance(started, GeometryNet) and started.head == "heatmap" and started.input_size == 64
    given = load_geometry(tmp_path / "geometry.keras").get_weights()
    moved = [np.abs(a - b).max() for a, b in zip(started.get_weights(), given, strict=True)]
    assert 0 < max(moved) < 0.05 * max(np.abs(w).max() for w in given)  # one step from the file's weights


@pytest.mark.slow
def test_a_truncated_shard_stops_training_with_one_sentence(pairs, tmp_path):
    folder, _ = pairs
    broken = tmp_path / "pairs"
    shutil.copytree(folder, broken)
    for shard in pair_shards(broken):
        data = Path(shard).read_bytes()
        Path(shard).write_bytes(data[: len(data) // 2])
    result = CliRunner().invoke(main, ["train", "--data", str(broken), "--run-dir", str(tmp_path / "run"),
                                       "--preset", "tiny", "--steps", "2", "--set", "eval_batch_size=2",
                                       "--no-progress"])
    assert result.exit_code == 1
    assert "is truncated or corrupt" in result.output and "Traceback" not in result.output
