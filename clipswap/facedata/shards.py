"""The TFRecord schema of aligned-face shards: writing, finding and parsing them.

One record is one aligned face (one `tf.train.Example`):

    image               bytes    the aligned crop as an encoded PNG or JPEG file (RGB once decoded), size x size
    label               int64    index of `identity` in the sorted identity list (OUTPUT/identities.json)
    identity            bytes    identity name (UTF-8): the input's first-level subfolder, or the file stem
    path                bytes    the original image's path (UTF-8, as resolved when aligned)
    size                int64    side of the aligned crop in pixels
    landmarks           float[10] five (x, y) points in crop pixels, ArcFace order
    landmarks_original  float[10] the same five points in pixels of the original image

Shards are named `shard-00000-of-00004.tfrecord`; `write_shards` writes every record (the last one included) in
the order given, `shard_size` a file.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from clipswap.atomic import atomic_path
from clipswap.errors import ClipswapError

log = logging.getLogger(__name__)

SHARD_PATTERN = "shard-*-of-*.tfrecord"

FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "identity": tf.io.FixedLenFeature([], tf.string),
    "path": tf.io.FixedLenFeature([], tf.string),
    "size": tf.io.FixedLenFeature([], tf.int64),
    "landmarks": tf.io.FixedLenFeature([10], tf.float32),
    "landmarks_original": tf.io.FixedLenFeature([10], tf.float32),
}


class ShardError(ClipswapError, ValueError):
    """Shards cannot be found or read."""


@dataclass(frozen=True)
class FaceRecord:
    """One aligned face as stored in a shard.

    Attributes:
        image: encoded PNG/JPEG bytes of the [size, size, 3] RGB crop.
        label: identity index into the sorted identity list.
        identity: identity name.
        path: original image path.
        size: crop side in pixels.
        landmarks: [5, 2] float32 (x, y) in crop pixels.
        landmarks_original: [5, 2] float32 (x, y) in original-image pixels.
    """

    image: bytes
    label: int
    identity: str
    path: str
    size: int
    landmarks: np.ndarray
    landmarks_original: np.ndarray


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def _floats(value: np.ndarray, name: str) -> tf.train.Feature:
    flat = np.asarray(value, dtype=np.float32).reshape(-1)
    if flat.shape != (10,):
        raise ValueError(f"{name} must hold 5 (x, y) points, got {flat.size} values")
    return tf.train.Feature(float_list=tf.train.FloatList(value=flat.tolist()))


def encode_record(record: FaceRecord) -> bytes:
    """Serialise one FaceRecord as a tf.train.Example."""
    features = {
        "image": _bytes(record.image),
        "label": _int(record.label),
        # surrogateescape: a file name that is not valid UTF-8 (Latin-1 bytes) round-trips as the bytes it was.
        "identity": _bytes(record.identity.encode("utf-8", "surrogateescape")),
        "path": _bytes(record.path.encode("utf-8", "surrogateescape")),
        "size": _int(record.size),
        "landmarks": _floats(record.landmarks, "landmarks"),
        "landmarks_original": _floats(record.landmarks_original, "landmarks_original"),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def decode_record(serialized: bytes) -> FaceRecord:
    """Parse one serialised Example back into a FaceRecord (Python side; tf.data uses `parse_features`)."""
    feature = tf.train.Example.FromString(serialized).features.feature
    return FaceRecord(
        image=feature["image"].bytes_list.value[0],
        label=int(feature["label"].int64_list.value[0]),
        identity=feature["identity"].bytes_list.value[0].decode("utf-8", "surrogateescape"),
        path=feature["path"].bytes_list.value[0].decode("utf-8", "surrogateescape"),
        size=int(feature["size"].int64_list.value[0]),
        landmarks=np.asarray(feature["landmarks"].float_list.value, dtype=np.float32).reshape(5, 2),
        landmarks_original=np.asarray(feature["landmarks_original"].float_list.value, dtype=np.float32).reshape(5, 2),
    )


def parse_features(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """tf.data parser: a scalar string tensor -> dict of tensors following FEATURES."""
    return tf.io.parse_single_example(serialized, FEATURES)


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}.tfrecord"


def write_shards(records: Sequence[Any] | Iterable[Any], folder: str | Path, total: int,
                 shard_size: int = 1000, encode: Callable[[Any], bytes] | None = None) -> list[Path]:
    """Write `total` records into ceil(total / shard_size) shards, in the order given, each file atomically.

    `encode` serialises one record (default: encode_record, for FaceRecords; the pairs job passes its own).
    Every record is written (the last included). Shards of an earlier run in `folder` whose names are not among the
    new ones are removed afterwards, so the folder always holds exactly one consistent set.

    Returns:
        The shard paths in order.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    if total < 1:
        raise ShardError("no records to write: every image was skipped")
    encode = encode or encode_record
    folder = Path(folder)
    count = -(-total // shard_size)
    paths = [folder / shard_name(index, count) for index in range(count)]
    iterator = iter(records)
    written = 0
    for path in paths:
        with atomic_path(path) as temporary, tf.io.TFRecordWriter(str(temporary)) as writer:
            for _ in range(min(shard_size, total - written)):
                try:
                    record = next(iterator)
                except StopIteration:
                    raise ShardError(f"expected {total} records, got only {written}") from None
                writer.write(encode(record))
                written += 1
    for stale in folder.glob(SHARD_PATTERN):
        if stale not in paths:
            log.info("removing stale shard %s", stale)
            stale.unlink()
    return paths


def list_shards(shards: str | Path | Sequence[str | Path]) -> list[str]:
    """Resolve shards to a sorted list of files.

    Args:
        shards: one .tfrecord file, a folder holding `shard-*-of-*.tfrecord` (or *.tfrecord), the `clipswap align`
            output folder (its `shards/` subfolder is used), a glob pattern, or a list of any of these.

    Raises:
        ShardError: nothing matches.
    """
    items = [shards] if isinstance(shards, (str, Path)) else list(shards)
    if not items:
        raise ShardError("no shards given")
    files: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_file():
            files.append(str(path))
        elif path.is_dir():
            found = sorted(path.glob(SHARD_PATTERN)) or sorted(path.glob("*.tfrecord"))
            if not found and (path / "shards").is_dir():
                found = sorted((path / "shards").glob(SHARD_PATTERN))
            if not found:
                raise ShardError(f"no .tfrecord shards in the folder {path}; run `clipswap align` to make them")
            files.extend(str(p) for p in found)
        else:
            matched = sorted(glob.glob(str(item)))
            if not matched:
                raise ShardError(f"shards {item} not found (not a file, a folder or a glob that matches anything)")
            files.extend(matched)
    return sorted(dict.fromkeys(files))


def iterate_records(shards: str | Path | Sequence[str | Path]) -> Iterator[FaceRecord]:
    """Every record of the shards in file order (Python side, for checks and tools)."""
    for file in list_shards(shards):
        for serialized in tf.data.TFRecordDataset(file).as_numpy_iterator():
            yield decode_record(serialized)


def count_records(shards: str | Path | Sequence[str | Path]) -> int:
    """Number of records in the shards (reads every file once)."""
    dataset = tf.data.TFRecordDataset(list_shards(shards))
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1).numpy())
