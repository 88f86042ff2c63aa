"""A face pack: the aligned faces of `clipswap align` shards as one file of JPEG crops with a NumPy index, readable
without TensorFlow (the JAX training path, on a machine where TensorFlow cannot be installed).

Why a new file and not a TensorFlow-free reader of the shards: the shards hold PNG crops (lfw_train at 128 px: 325 MiB
of shards), five times what can travel with the repository to the GPU machine (64 MiB in all), so the crops have to
be re-encoded anyway; once they are, a flat blob indexed by byte offsets gives random access (any record of any
batch, which is what makes a batch a pure function of the seed and the step) with NumPy alone, where a TFRecord
reader would need its own protobuf parser and a pass over the file to find records.

Layout of PACK/:
    faces.bin   the JPEG files one after another (RGB once decoded, size x size)
    index.npz   offset [N] int64, length [N] int32 (bytes of each JPEG in faces.bin), label [N] int64 (identity
                index of the shards' identities.json), shard [N] int32 (the shard each record came from, in the
                shards' sorted order), path [N] str (the original photo)
    pack.json   version, image_size (the crops' side), source_image_size (the shards'; larger when `--size`
                shrank them), quality, faces, identities, shards, bytes, and the JPEG re-encoding's mean absolute
                error against the pixels it encoded (0-255 scale)

Records keep the shards' file order, so the TensorFlow path's split (the last shard held out) and its fixed
evaluation batch (the first records of the held-out shard) are the same records here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from clipswap.atomic import ensure_writable_dir
from clipswap.errors import ClipswapError

logger = logging.getLogger(__name__)

PACK_VERSION = 1
BLOB, INDEX, MANIFEST = "faces.bin", "index.npz", "pack.json"
#: JPEG quality of `clipswap pack`: lfw_train at 128 px takes 42 MiB at 85 (50 at 90, 67 at 95; 33 at 75, what fits
#: beside the repository and the carried wheels in the GPU machine's 64 MiB); the mean error is written in pack.json.
DEFAULT_QUALITY = 85


class PackError(ClipswapError, ValueError):
    """A pack cannot be written or read (the message says which file and why)."""


@dataclass(frozen=True)
class FacePack:
    """An opened pack: the index in memory, the JPEG blob memory-mapped (decoding reads only the bytes it needs).

    Attributes:
        folder: the pack folder.
        blob: uint8 memory map of faces.bin.
        offset, length, label, shard, path: the index's arrays ([N] each).
        manifest: pack.json.
    """

    folder: Path
    blob: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    label: np.ndarray
    shard: np.ndarray
    path: np.ndarray
    manifest: dict

    def __len__(self) -> int:
        return len(self.offset)

    @property
    def image_size(self) -> int:
        return int(self.manifest["image_size"])

    def decode(self, index: int) -> np.ndarray:
        """Record `index` as [S, S, 3] uint8 RGB (cv2's decoder releases the GIL, so threads decode in parallel).

        Raises:
            PackError: the bytes are not a readable image (a damaged faces.bin).
        """
        start = int(self.offset[index])
        bgr = cv2.imdecode(self.blob[start:start + int(self.length[index])], cv2.IMREAD_COLOR)
        if bgr is None:
            raise PackError(f"record {index} of {self.folder / BLOB} is not a readable JPEG: the pack is damaged; "
                            "write it again with `clipswap pack`")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """(training record indices, held-out record indices): the last shard is held out when there are several,
        as the TensorFlow path's split_heldout does; with one shard both are every record."""
        every = np.arange(len(self))
        shards = int(self.manifest["shards"])
        if shards < 2:
            logger.warning("only one shard in the pack: the evaluation batch is drawn from the training data")
            return every, every
        last = self.shard == shards - 1
        return every[~last], every[last]


def is_pack(folder: str | Path) -> bool:
    """True when `folder` holds a pack's manifest."""
    return (Path(folder) / MANIFEST).is_file()


def open_pack(folder: str | Path) -> FacePack:
    """Open a pack written by `write_pack`, checking that its three files agree.

    Raises:
        PackError: a file is missing, unreadable, of another version, or the index points past the blob.
    """
    folder = Path(folder)
    for name in (BLOB, INDEX, MANIFEST):
        if not (folder / name).is_file():
            raise PackError(f"{folder} is not a face pack: {name} is missing (write one with `clipswap pack`)")
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        with np.load(folder / INDEX, allow_pickle=False) as index:
            arrays = {key: index[key] for key in ("offset", "length", "label", "shard", "path")}
    except (OSError, ValueError, KeyError) as error:
        raise PackError(f"the face pack {folder} cannot be read ({error}); write it again with `clipswap pack`") \
            from error
    if not isinstance(manifest, dict) or manifest.get("version") != PACK_VERSION:
        raise PackError(f"{folder / MANIFEST} is not a version {PACK_VERSION} pack manifest; write the pack again "
                        "with this version's `clipswap pack`")
    size = (folder / BLOB).stat().st_size
    count = len(arrays["offset"])
    if count == 0 or count != int(manifest.get("faces", -1)):
        raise PackError(f"the face pack {folder} holds {count} index rows but its manifest says "
                        f"{manifest.get('faces')} faces; write it again with `clipswap pack`")
    if int(np.max(arrays["offset"] + arrays["length"])) > size:
        raise PackError(f"{folder / BLOB} is shorter ({size} bytes) than its index says: the pack was cut short; "
                        "write it again with `clipswap pack`")
    blob = np.memmap(folder / BLOB, dtype=np.uint8, mode="r")
    return FacePack(folder, blob, manifest=manifest, **arrays)


def write_pack(data_dir: str | Path, output: str | Path, quality: int = DEFAULT_QUALITY,
               size: int | None = None) -> dict:
    """Pack the faces of `clipswap align` shards (reads them with TensorFlow; the pack is then read without it).

    The pack is written into a temporary folder beside `output` and renamed onto it when complete, so a failed or
    killed write leaves no pack that looks whole.

    Args:
        data_dir: the `clipswap align` output folder, or its shards.
        output: the pack folder to create (must not exist, or be empty).
        quality: JPEG quality 1-100.
        size: shrink the crops to size x size before encoding (a preset that trains at a smaller side than the
            shards' crops gets a pack a fraction of the size); None keeps the shards' side.

    Returns:
        The manifest (pack.json's content).

    Raises:
        PackError: no shards, an output folder that holds files, an undecodable record, crops of mixed sizes, a
            `size` larger than the crops.
    """
    from clipswap.facedata.shards import ShardError, iterate_records, list_shards

    output = Path(output)
    if not 1 <= quality <= 100:
        raise PackError(f"the JPEG quality must be in 1..100, got {quality}")
    if size is not None and size < 1:
        raise PackError(f"the pack's crop size must be at least 1 pixel, got {size}")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise PackError(f"{output} already exists and is not an empty folder; choose a new --output")
    try:
        files = list_shards(data_dir)
    except ShardError as error:
        raise PackError(str(error)) from error
    parent = ensure_writable_dir(output.parent if str(output.parent) else Path("."))
    temporary = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=parent))
    try:
        manifest = _write_pack_files(files, iterate_records, temporary, quality, size)
        manifest["source"] = str(Path(data_dir).resolve())
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        if output.is_dir():
            output.rmdir()
        os.replace(temporary, output)
    except BaseException as error:
        shutil.rmtree(temporary, ignore_errors=True)
        import tensorflow as tf  # loaded already: the shards were read through it

        if isinstance(error, tf.errors.DataLossError):
            detail = error.message.splitlines()[0] if error.message else type(error).__name__
            raise PackError(f"a shard of {data_dir} is truncated or corrupt ({detail.split('}}')[-1].strip()}); re-run "
                            "`clipswap align` into a fresh folder") from error
        raise
    return manifest


def _write_pack_files(files: list[str], iterate_records, folder: Path, quality: int, shrink_to: int | None) -> dict:
    """faces.bin and index.npz of the records of `files` (in order), shrunk to `shrink_to` when given, into
    `folder`; the manifest without its source."""
    offsets, lengths, labels, shards, paths = [], [], [], [], []
    error_sum, pixels, size, position = 0.0, 0, None, 0
    with open(folder / BLOB, "wb") as blob:
        for shard_number, file in enumerate(files):
            for record in iterate_records(file):
                bgr = cv2.imdecode(np.frombuffer(record.image, np.uint8), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise PackError(f"a record of {file} ({record.path}) does not decode as an image; re-run "
                                    "`clipswap align` into a fresh folder")
                if size is None:
                    size = bgr.shape[0]
                if bgr.shape[:2] != (size, size):
                    raise PackError(f"{file} holds crops of {bgr.shape[1]}x{bgr.shape[0]} and of {size}x{size}: a "
                                    "pack holds one size")
                if shrink_to is not None and shrink_to != size:
                    if shrink_to > size:
                        raise PackError(f"the shards' crops are {size} px: a pack can shrink them but not enlarge "
                                        f"them to {shrink_to} px (align at that size instead)")
                    bgr = cv2.resize(bgr, (shrink_to, shrink_to), interpolation=cv2.INTER_AREA)
                ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
                if not ok:
                    raise PackError(f"OpenCV could not encode {record.path} as JPEG")
                decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
                error_sum += float(np.abs(decoded.astype(np.float64) - bgr).sum())
                pixels += bgr.size
                blob.write(encoded.tobytes())
                offsets.append(position)
                lengths.append(len(encoded))
                position += len(encoded)
                labels.append(record.label)
                shards.append(shard_number)
                paths.append(record.path)
    if not offsets:
        raise PackError("the shards hold no records: nothing to pack")
    np.savez_compressed(folder / INDEX, offset=np.asarray(offsets, np.int64), length=np.asarray(lengths, np.int32),
             label=np.asarray(labels, np.int64), shard=np.asarray(shards, np.int32), path=np.asarray(paths, str))
    return {"version": PACK_VERSION, "image_size": int(shrink_to or size), "source_image_size": int(size),
            "quality": int(quality), "faces": len(offsets),
            "identities": len(set(labels)), "shards": len(files), "bytes": position,
            "jpeg_mean_abs_error": round(error_sum / pixels, 4)}
