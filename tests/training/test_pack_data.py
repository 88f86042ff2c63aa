"""The face pack and its TensorFlow-free training stream: the pack holds the shards' faces in their order (JPEG within
a few grey levels), splits and picks the evaluation batch as the tf.data path does, samples same-identity pairs from
two different photos, gives batch k as a pure function of (seed, k) through its threads, refuses a damaged pack with
one sentence, and is read and streamed in a process where TensorFlow cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from clipswap.cli import main
from clipswap.facedata.pack import PackError, open_pack, write_pack
from clipswap.training.pack_data import PackStream, pack_eval_batch

from conftest import REPO_ROOT

#: Faces of the fixture: 20 records in shards of 8; person index // 3 (3 photos each), persons 6 and 7 one photo.
FACES = 20
SIZE = 32


def _label(index: int) -> int:
    return index // 3 if index < 18 else 6 + (index - 18)


def _shards(folder):
    from clipswap.facedata.shards import FaceRecord, write_shards

    faces = []
    for index in range(FACES):
        # Smooth images (JPEG keeps them within a few levels), each with its own colour: records are told apart.
        ramp = np.linspace(0, 1, SIZE, dtype=np.float32)[None, :, None]
        colour = np.random.default_rng(index).uniform(40, 215, 3).astype(np.float32)
        rgb = np.clip(colour + 30 * ramp + np.zeros((SIZE, SIZE, 3), np.float32), 0, 255).astype(np.uint8)
        png = cv2.imencode(".png", rgb[..., ::-1])[1].tobytes()
        points = np.zeros((5, 2), np.float32)
        faces.append(FaceRecord(png, _label(index), f"p{_label(index)}", f"/x/{index}.jpg", SIZE, points, points))
    folder.mkdir(parents=True)
    write_shards(faces, folder, FACES, shard_size=8)
    return folder, faces


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("pack")
    shards, faces = _shards(root / "aligned")
    manifest = write_pack(shards, root / "pack", quality=90)
    return root, shards, faces, manifest


def test_the_pack_holds_the_shards_faces_in_order(packed):
    root, _, faces, manifest = packed
    pack = open_pack(root / "pack")
    assert manifest["faces"] == len(pack) == FACES and manifest["shards"] == 3 and manifest["image_size"] == SIZE
    assert manifest["identities"] == len({_label(i) for i in range(FACES)})
    for index, face in enumerate(faces):
        expected = cv2.cvtColor(cv2.imdecode(np.frombuffer(face.image, np.uint8), cv2.IMREAD_COLOR),
                                cv2.COLOR_BGR2RGB)
        assert np.abs(pack.decode(index).astype(int) - expected).mean() < 3.0
        assert pack.label[index] == face.label and pack.path[index] == face.path
    assert 0 < manifest["jpeg_mean_abs_error"] < 3.0
    train, heldout = pack.split()
    assert heldout.tolist() == list(range(16, FACES)) and train.tolist() == list(range(16))


def test_the_evaluation_batch_is_the_tf_path_s(packed):
    from clipswap.training.data import make_eval_batch

    root, shards, _, _ = packed
    pack = open_pack(root / "pack")
    _, heldout = pack.split()
    ours = pack_eval_batch(pack, heldout, 3, SIZE, seed=5)
    theirs = make_eval_batch(sorted(shards.glob("*.tfrecord"))[-1:], 3, SIZE, seed=5)
    for key in ("target_path", "source_path"):
        assert [p.decode() for p in np.asarray(theirs[key])] == ours[key].tolist()
    for key in ("target", "source"):
        assert np.abs(np.asarray(theirs[key]) - ours[key]).max() < 0.15  # JPEG, [-1, 1] scale
    assert (ours["target_label"] != ours["source_label"]).all()


def test_same_identity_pairs_are_two_photos_of_one_person(packed):
    root = packed[0]
    pack = open_pack(root / "pack")
    train, _ = pack.split()
    stream = PackStream(pack, train, 8, SIZE, same_identity_prob=0.5, jitter=False, seed=3)
    assert stream.mates
    same_count = 0
    for number in range(12):
        batch = stream.batch(number)
        assert batch["target"].shape == (8, SIZE, SIZE, 3) and batch["target"].dtype == np.float32
        assert batch["target"].min() >= -1.0 and batch["target"].max() <= 1.0
        same = batch["same"] > 0
        assert same.any(), "at least one same-identity pair a batch"
        same_count += int(same.sum())
        assert (batch["target_label"][same] == batch["source_label"][same]).all()
        differs = np.abs(batch["target"][same] - batch["source"][same]).reshape(int(same.sum()), -1).max(axis=1)
        assert (differs > 0.05).all(), "a same-identity pair's source is another photo, not the target's"
    assert 0.3 < same_count / (12 * 8) < 0.7


def test_batch_k_is_a_pure_function_of_seed_and_k_through_the_threads(packed):
    root = packed[0]
    pack = open_pack(root / "pack")
    train, _ = pack.split()
    make = lambda seed: PackStream(pack, train, 4, 24, same_identity_prob=0.3, seed=seed, workers=2,  # noqa: E731
                                   prefetch=3)
    stream = make(1)
    threaded = stream.iterate(start=5)
    for number in range(5, 9):
        got, again = next(threaded), make(1).batch(number)
        for key in got:
            np.testing.assert_array_equal(got[key], again[key])
    threaded.close()
    assert got["target"].shape == (4, 24, 24, 3)  # resized to the asked side
    other = make(2).batch(8)
    assert not np.array_equal(other["target"], got["target"])
    # Over an epoch (16 training records, batches of 4) the target stream visits every record once.
    plain = PackStream(pack, train, 4, SIZE, same_identity_prob=0.0, jitter=False, seed=1)
    labels = np.concatenate([plain.batch(k)["target_label"] for k in range(4)])
    assert sorted(labels.tolist()) == sorted(pack.label[train].tolist())


def test_a_pack_can_shrink_its_crops_but_not_enlarge_them(packed, tmp_path):
    root, shards, faces, _ = packed
    result = CliRunner().invoke(main, ["pack", "--data", str(shards), "--output", str(tmp_path / "small"), "--size",
                                       str(SIZE // 2)])
    assert result.exit_code == 0, result.output
    pack = open_pack(tmp_path / "small")
    assert (pack.manifest["image_size"], pack.manifest["source_image_size"]) == (SIZE // 2, SIZE)
    assert pack.image_size == SIZE // 2 and len(pack) == FACES
    assert pack.manifest["bytes"] < (root / "pack" / "faces.bin").stat().st_size
    for index in (0, FACES - 1):
        expected = cv2.resize(cv2.imdecode(np.frombuffer(faces[index].image, np.uint8), cv2.IMREAD_COLOR),
                              (SIZE // 2, SIZE // 2), interpolation=cv2.INTER_AREA)
        assert np.abs(pack.decode(index).astype(int) - cv2.cvtColor(expected, cv2.COLOR_BGR2RGB)).mean() < 3.0
    result = CliRunner().invoke(main, ["pack", "--data", str(shards), "--output", str(tmp_path / "big"), "--size",
                                       str(SIZE * 2)])
    assert result.exit_code == 1 and "can shrink them but not enlarge them" in result.output
    assert not (tmp_path / "big").exists() and "Traceback" not in result.output


def test_a_damaged_or_occupied_pack_is_one_sentence(packed, tmp_path):
    root, shards, _, _ = packed
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("index.npz", "pack.json"):
        (broken / name).write_bytes((root / "pack" / name).read_bytes())
    (broken / "faces.bin").write_bytes((root / "pack" / "faces.bin").read_bytes()[:100])
    with pytest.raises(PackError, match="cut short"):
        open_pack(broken)
    with pytest.raises(PackError, match="faces.bin is missing"):
        open_pack(tmp_path)
    result = CliRunner().invoke(main, ["pack", "--data", str(shards), "--output", str(root / "pack")])
    assert result.exit_code == 1 and "not an empty folder" in result.output and "Traceback" not in result.output
    assert not list(root.glob(".pack.partial-*")), "a refused pack leaves no temporary folder"


def test_a_truncated_shard_is_one_sentence_and_leaves_no_pack(packed, tmp_path):
    _, shards, _, _ = packed
    broken = tmp_path / "aligned"
    broken.mkdir()
    for shard in sorted(shards.glob("*.tfrecord")):
        data = shard.read_bytes()
        (broken / shard.name).write_bytes(data[: len(data) // 2])
    for other in shards.iterdir():
        if other.suffix != ".tfrecord":
            (broken / other.name).write_bytes(other.read_bytes())
    result = CliRunner().invoke(main, ["pack", "--data", str(broken), "--output", str(tmp_path / "pack")])
    assert result.exit_code == 1, result.output
    assert "is truncated or corrupt" in result.output and "unexpected" not in result.output
    assert not (tmp_path / "pack").exists() and not list(tmp_path.glob(".pack.partial-*"))


def test_the_pack_streams_with_tensorflow_unimportable(packed):
    root = packed[0]
    script = textwrap.dedent(f"""
        import sys
        sys.modules["tensorflow"] = None
        from clipswap.facedata.pack import open_pack
        from clipswap.training.pack_data import PackStream, pack_eval_batch
        pack = open_pack({str(root / "pack")!r})
        train, heldout = pack.split()
        batch = next(PackStream(pack, train, 4, {SIZE}, seed=0).iterate())
        evaluation = pack_eval_batch(pack, heldout, 2, {SIZE}, seed=0)
        assert "tensorflow" not in [m for m in sys.modules if sys.modules[m] is not None]
        print(batch["target"].shape, evaluation["source"].shape)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"(4, {SIZE}, {SIZE}, 3) (2, {SIZE}, {SIZE}, 3)" in result.stdout
