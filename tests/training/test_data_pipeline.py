"""The training tf.data pipeline on synthetic shards: shapes, ranges, same pairs, jitter, seeds, eval batch, shards."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tensorflow as tf

from clipswap.facedata.shards import FaceRecord, ShardError, iterate_records, list_shards, write_shards
from clipswap.training.data import (
    color_jitter,
    count_records,
    make_eval_batch,
    make_train_dataset,
    people_with_several_faces,
)

RECORDS = 30
SHARD_SIZE = 64
IDENTITIES = 3


def _record(index: int, size: int) -> tuple[FaceRecord, np.ndarray]:
    rgb = np.random.default_rng(index).integers(0, 256, (size, size, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    points = np.arange(10, dtype=np.float32).reshape(5, 2) + index
    record = FaceRecord(png.tobytes(), index % IDENTITIES, f"person{index % IDENTITIES}", f"/x/{index}.jpg", size,
                        points, points * 2)
    return record, rgb


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """30 records of 64 px in 4 shards; returns (folder, {label: [rgb images]}, [rgb by record])."""
    folder = tmp_path_factory.mktemp("shards")
    pairs = [_record(i, SHARD_SIZE) for i in range(RECORDS)]
    paths = write_shards([r for r, _ in pairs], folder, RECORDS, shard_size=8)
    assert len(paths) == 4
    return folder, [rgb for _, rgb in pairs]


def _find(image: np.ndarray, originals: list[np.ndarray]) -> int:
    """Index of the original whose [-1, 1] pixels equal `image` exactly (-1 if none)."""
    for index, rgb in enumerate(originals):
        if np.array_equal(image, rgb.astype(np.float32) / 127.5 - 1.0):
            return index
    return -1


def _batches(dataset, count):
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(count)]


def test_shard_round_trip_keeps_every_record(shards, tmp_path):
    folder, _ = shards
    assert count_records(folder) == RECORDS
    records = list(iterate_records(folder))
    assert sorted(int(r.path[3:-4]) for r in records) == list(range(RECORDS))
    record, _ = _record(7, SHARD_SIZE)
    stored = next(r for r in records if r.path == record.path)
    assert stored.image == record.image and stored.label == 1 and stored.identity == "person1"
    np.testing.assert_array_equal(stored.landmarks_original, record.landmarks_original)
    # The last record of an uneven split is kept (FaceDancer's slicing drops it), and stale shards go.
    stale = tmp_path / "shard-00000-of-00009.tfrecord"
    stale.write_bytes(b"")
    written = write_shards([_record(i, 8)[0] for i in range(11)], tmp_path, 11, shard_size=5)
    assert [p.name for p in written] == [f"shard-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert not stale.exists() and count_records(tmp_path) == 11
    assert list(iterate_records(written[-1]))[0].path == "/x/10.jpg"


def test_list_shards_errors(tmp_path):
    with pytest.raises(ShardError, match="not found"):
        list_shards(tmp_path / "nothing")
    with pytest.raises(ShardError, match="no .tfrecord shards"):
        list_shards(tmp_path)


def test_shapes_dtypes_and_range(shards):
    folder, _ = shards
    dataset = make_train_dataset(folder, batch_size=4, image_size=SHARD_SIZE, seed=0, shuffle_buffer=16)
    spec = dataset.element_spec
    assert spec["target"].shape == (4, SHARD_SIZE, SHARD_SIZE, 3) and spec["target"].dtype == tf.float32
    assert spec["source"].shape == (4, SHARD_SIZE, SHARD_SIZE, 3) and spec["source"].dtype == tf.float32
    assert spec["same"].shape == (4,) and spec["same"].dtype == tf.float32
    assert spec["target_label"].shape == (4,) and spec["target_label"].dtype == tf.int64
    assert spec["source_label"].shape == (4,) and spec["source_label"].dtype == tf.int64
    for batch in _batches(dataset, 10):  # 10 batches of 4 > 30 records: crosses an epoch boundary
        for key in ("target", "source"):
            assert np.isfinite(batch[key]).all()
            assert batch[key].min() >= -1.0 and batch[key].max() <= 1.0
        assert set(batch["target_label"]) <= set(range(IDENTITIES))


def test_without_jitter_the_pixels_are_the_decoded_records(shards):
    folder, originals = shards
    dataset = make_train_dataset(folder, 5, SHARD_SIZE, same_identity_prob=0.0, jitter=False, seed=1,
                                 shuffle_buffer=32, repeat=False)
    batches = _batches(dataset, 100)
    assert len(batches) == RECORDS // 5
    seen = []
    for batch in batches:
        assert not batch["same"].any()
        for key in ("target", "source"):
            for image, label in zip(batch[key], batch[f"{key}_label"], strict=True):
                index = _find(image, originals)
                assert index >= 0 and index % IDENTITIES == label
                if key == "target":
                    seen.append(index)
    assert sorted(seen) == list(range(RECORDS))  # one pass over the data, every record once


def test_resize_is_bilinear_when_the_shards_hold_another_size(shards):
    folder, originals = shards
    batch = _batches(make_train_dataset(folder, 3, SHARD_SIZE // 2, same_identity_prob=0.0, jitter=False), 1)[0]
    assert batch["target"].shape == (3, SHARD_SIZE // 2, SHARD_SIZE // 2, 3)
    # Halving with half-pixel centres samples between each 2x2 block: the block mean.
    means = [(rgb.astype(np.float32) / 127.5 - 1.0).reshape(32, 2, 32, 2, 3).mean(axis=(1, 3)) for rgb in originals]
    for image in batch["target"]:
        assert min(np.abs(image - m).max() for m in means) < 1e-5


def test_same_pairs(shards):
    folder, _ = shards
    batch_size, probability = 6, 0.3
    dataset = make_train_dataset(folder, batch_size, SHARD_SIZE, same_identity_prob=probability, seed=5,
                                 shuffle_buffer=16)
    batches = _batches(dataset, 150)
    fractions = []
    for batch in batches:
        same = batch["same"].astype(bool)
        assert same.any(), "every batch has at least one same-identity pair"
        np.testing.assert_array_equal(batch["source"][same], batch["target"][same])
        np.testing.assert_array_equal(batch["source_label"][same], batch["target_label"][same])
        assert not np.array_equal(batch["source"][~same], batch["target"][~same]) or not (~same).any()
        fractions.append(same.mean())
    # Bernoulli(p) per sample plus one forced sample when none was drawn.
    expected = probability + (1 - probability) ** batch_size / batch_size
    assert abs(np.mean(fractions) - expected) < 0.05, (np.mean(fractions), expected)
    none = _batches(make_train_dataset(folder, 4, SHARD_SIZE, same_identity_prob=0.0, seed=5), 20)
    assert not any(b["same"].any() for b in none)
    every = _batches(make_train_dataset(folder, 4, SHARD_SIZE, same_identity_prob=1.0, seed=5), 3)
    assert all(b["same"].all() and np.array_equal(b["source"], b["target"]) for b in every)


def test_same_pairs_with_mates_are_two_different_photos_of_one_person(shards):
    folder, originals = shards
    assert people_with_several_faces(folder) == (IDENTITIES, IDENTITIES)
    dataset = make_train_dataset(folder, 6, SHARD_SIZE, same_identity_prob=0.5, jitter=False, seed=2,
                                 shuffle_buffer=16, mates=True)
    seen = 0
    for batch in _batches(dataset, 40):
        for i in np.flatnonzero(batch["same"]):
            target, source = _find(batch["target"][i], originals), _find(batch["source"][i], originals)
            assert target >= 0 and source >= 0 and target != source
            assert target % IDENTITIES == source % IDENTITIES == batch["target_label"][i] == batch["source_label"][i]
            seen += 1
        for i in np.flatnonzero(batch["same"] == 0):
            assert batch["target_label"][i] == _find(batch["target"][i], originals) % IDENTITIES
    assert seen > 60
    # Seeded: two datasets made alike give the same batches (one dataset reshuffles on each new iteration).
    twice = [_batches(make_train_dataset(folder, 6, SHARD_SIZE, same_identity_prob=0.5, jitter=False, seed=2,
                                         shuffle_buffer=16, mates=True), 5) for _ in range(2)]
    for a, b in zip(*twice, strict=True):
        np.testing.assert_array_equal(a["source"], b["source"])


def test_a_person_with_one_face_is_never_a_mate(tmp_path):
    records = [_record(i, 16)[0] for i in range(4)]
    # Labels 0, 1, 2, 2: only person 2 has two faces.
    records = [FaceRecord(r.image, label, f"p{label}", r.path, r.size, r.landmarks, r.landmarks_original)
               for r, label in zip(records, (0, 1, 2, 2), strict=True)]
    write_shards(records, tmp_path, 4, shard_size=4)
    assert people_with_several_faces(tmp_path) == (1, 3)
    batch = _batches(make_train_dataset(tmp_path, 2, 16, same_identity_prob=1.0, jitter=False, mates=True,
                                        shuffle_buffer=4), 3)
    assert all((b["target_label"] == 2).all() and (b["source_label"] == 2).all() for b in batch)
    assert all(not np.array_equal(b["source"][0], b["target"][0]) for b in batch)


def test_seeded_and_reproducible(shards):
    folder, _ = shards

    def first(seed):
        return _batches(make_train_dataset(folder, 4, SHARD_SIZE, seed=seed, shuffle_buffer=16), 3)

    one, again, other = first(11), first(11), first(12)
    for a, b in zip(one, again, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert any(not np.array_equal(a["target"], b["target"]) for a, b in zip(one, other, strict=True))
    # Target and source streams are shuffled independently.
    assert any(not np.array_equal(b["target_label"], b["source_label"]) for b in one)


def test_jitter_is_one_draw_per_batch_within_the_recipe_ranges():
    grey = tf.fill([4, 8, 8, 3], 0.1)
    shifts = []
    for step in range(40):
        out = color_jitter(grey, tf.constant([3, step], tf.int64)).numpy()
        # Contrast and saturation leave a flat grey image unchanged; only the brightness shift remains.
        shift = out - 0.1
        np.testing.assert_allclose(shift, shift.flat[0], atol=1e-6)
        shifts.append(shift.flat[0])
    assert max(np.abs(shifts)) <= 0.3 + 1e-6 and np.std(shifts) > 0.1
    ramp = tf.reshape(tf.linspace(-0.5, 0.5, 2 * 8 * 8 * 3), [2, 8, 8, 3])
    out = color_jitter(ramp, tf.constant([3, 0], tf.int64)).numpy()
    assert not np.allclose(out, ramp.numpy()) and out.min() >= -1 and out.max() <= 1
    np.testing.assert_array_equal(out, color_jitter(ramp, tf.constant([3, 0], tf.int64)).numpy())


def test_jitter_changes_colours_but_not_the_draws(shards):
    folder, _ = shards
    plain = _batches(make_train_dataset(folder, 4, SHARD_SIZE, jitter=False, seed=2), 2)
    jittered = _batches(make_train_dataset(folder, 4, SHARD_SIZE, jitter=True, seed=2), 2)
    for a, b in zip(plain, jittered, strict=True):
        np.testing.assert_array_equal(a["target_label"], b["target_label"])
        np.testing.assert_array_equal(a["same"], b["same"])
        assert not np.allclose(a["target"], b["target"])
        assert not np.allclose(a["source"] - a["target"], 0) or a["same"].all()


def test_eval_batch(shards):
    folder, originals = shards
    batch = make_eval_batch(folder, 6, SHARD_SIZE, seed=0)
    again = make_eval_batch(folder, 6, SHARD_SIZE, seed=0)
    other = make_eval_batch(folder, 6, SHARD_SIZE, seed=1)
    assert batch["target"].shape == (6, SHARD_SIZE, SHARD_SIZE, 3) and batch["target"].dtype == tf.float32
    assert batch["same"].numpy().tolist() == [0.0] * 6
    for key in batch:
        np.testing.assert_array_equal(batch[key].numpy(), again[key].numpy())
    assert not np.array_equal(batch["target"].numpy(), other["target"].numpy())
    assert (batch["target_label"].numpy() != batch["source_label"].numpy()).all()
    indices = [_find(image, originals) for image in batch["target"].numpy()]
    assert min(indices) >= 0 and len(set(indices)) == 6
    assert make_eval_batch(folder, 2, 16, seed=0)["source"].shape == (2, 16, 16, 3)


def test_bad_arguments(shards):
    folder, _ = shards
    with pytest.raises(ValueError, match="same_identity_prob"):
        make_train_dataset(folder, 4, 64, same_identity_prob=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        make_train_dataset(folder, 0, 64)
