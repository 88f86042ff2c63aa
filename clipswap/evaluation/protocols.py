"""Evaluation protocols: build a pairs file from a folder of videos (FF++) or of images (CelebA-HQ / FFHQ style).

* ffpp: as the paper's FaceForensics++ protocol (10 frames x 1000 videos, its Table I): from each video
  `frames_per_video` frames are drawn at random (seeded) and written as PNG; each video is the target of one pairing
  and its source is another video chosen by a seeded derangement (no video is its own source); the k-th sampled
  frame of the target video gets the k-th sampled frame of the source video. Identity label = the video's file stem.
* sample: as the paper's CelebA-HQ / FFHQ protocol (10K random pairs): `count` seeded random (source, target)
  pairs from the images of a folder (searched recursively, symbolic links followed). Identity labels come from the
  folder layout: images in per-person subfolders (LFW, VGGFace2) are labelled with the subfolder's name and source
  and target are drawn from different identities; images directly in the folder (CelebA-HQ, FFHQ) are each their
  own identity and source != target.

Both write a pairs file (see clipswap.evaluation.pairs) and are reproducible: the same folder, count and seed give
the same file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

from clipswap.errors import ClipswapError
from clipswap.evaluation.pairs import Pair, write_pairs
from clipswap.media.common import IMAGE_SUFFIXES, VIDEO_SUFFIXES, MediaError, walk_files
from clipswap.media.video import VideoReader

log = logging.getLogger(__name__)


class ProtocolError(ClipswapError, ValueError):
    """The input folder cannot give the protocol's pairs (too few videos, images or identities; a bad count)."""


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    return [p for p in walk_files(folder) if p.suffix.lower() in suffixes]


def _derangement(count: int, rng: np.random.Generator) -> np.ndarray:
    """A seeded permutation of range(count) with no fixed point (count >= 2)."""
    while True:
        order = rng.permutation(count)
        if not np.any(order == np.arange(count)):
            return order


def _read_frames(video: Path, indices: np.ndarray) -> dict[int, np.ndarray]:
    """Decode the frames at `indices` of `video` in one sequential pass (stopping after the last); RGB uint8."""
    wanted, frames = {int(i) for i in indices}, {}
    with VideoReader(video) as reader:
        for index, frame in enumerate(reader):
            if index in wanted:
                frames[index] = frame.copy()
            if index >= max(wanted):
                break
    return frames


def count_frames(video: Path) -> int:
    """The number of frames ffmpeg decodes from `video` (exact, unlike the container's estimate).

    Raises:
        MediaError: ffmpeg cannot decode the file.
    """
    try:
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    except (OSError, RuntimeError) as error:
        reason = (str(error).strip().splitlines() or ["ffmpeg failed"])[-1]
        raise MediaError(f"cannot count the frames of {video} ({reason})") from error
    return int(frames)


def sample_video_frames(video: Path, frames_dir: Path, count: int, rng: np.random.Generator) -> list[Path]:
    """Draw `count` distinct random frames of `video` and write them as PNG under `frames_dir`; returns the paths
    in frame order.

    Raises:
        MediaError: the video cannot be decoded, or has fewer than `count` frames.
    """
    total = count_frames(video)
    if total < count:
        raise MediaError(f"{video} has {total} frames, fewer than the {count} asked for")
    indices = np.sort(rng.choice(total, size=count, replace=False))
    frames = _read_frames(video, indices)
    if len(frames) < count:
        raise MediaError(f"{video} gave {len(frames)} of the {count} sampled frames; it is truncated or corrupt")
    frames_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in indices:
        path = frames_dir / f"{int(index):06d}.png"
        # Real frames, not swaps: plain PNG without the synthetic-content label (cv2 wants BGR).
        if not cv2.imwrite(str(path), np.ascontiguousarray(frames[int(index)][..., ::-1])):
            raise OSError(f"could not write {path}")
        paths.append(path)
    return paths


def ffpp_protocol(
    video_dir: str | Path,
    output_dir: str | Path,
    frames_per_video: int = 10,
    seed: int = 0,
    pairs_name: str = "pairs.tsv",
) -> Path:
    """FF++-style pairs from a folder of videos (see module docstring).

    Frames go to `output_dir/frames/<video stem>/<frame index>.png`; returns the pairs file `output_dir/pairs_name`.

    Raises:
        ProtocolError: fewer than 2 videos. MediaError: a video that cannot be decoded or is shorter than
            `frames_per_video`.
    """
    video_dir, output_dir = Path(video_dir), Path(output_dir)
    videos = _files(video_dir, VIDEO_SUFFIXES)
    if len(videos) < 2:
        raise ProtocolError(f"the ffpp protocol needs at least 2 videos in {video_dir}, found {len(videos)}")
    stems = [v.relative_to(video_dir).with_suffix("").as_posix().replace("/", "__") for v in videos]
    rng = np.random.default_rng(seed)
    frames = [
        sample_video_frames(video, output_dir / "frames" / stem, frames_per_video, rng)
        for video, stem in zip(videos, stems, strict=True)
    ]
    sources = _derangement(len(videos), rng)
    pairs = [
        Pair(source=frames[s][k], target=frames[t][k], output=None, label=stems[s])
        for t, s in enumerate(sources)
        for k in range(frames_per_video)
    ]
    log.info("ffpp protocol: %d videos x %d frames -> %d pairs", len(videos), frames_per_video, len(pairs))
    comment = (
        f"ffpp protocol: {len(videos)} videos from {video_dir.resolve()}, {frames_per_video} frames each, seed {seed}"
    )
    return write_pairs(pairs, output_dir / pairs_name, comment=comment)


def image_labels(image_dir: Path, images: list[Path]) -> list[str] | None:
    """Identity labels from the folder layout: the first subfolder under `image_dir`, or None when every image
    lies directly in `image_dir`."""
    parts = [image.relative_to(image_dir).parts for image in images]
    if all(len(p) == 1 for p in parts):
        return None
    return [p[0] if len(p) > 1 else Path(p[0]).stem for p in parts]


def sample_pairs(image_dir: str | Path, count: int, seed: int = 0) -> list[Pair]:
    """`count` seeded random (source, target) pairs from the images under `image_dir` (module docstring)."""
    image_dir = Path(image_dir)
    images = _files(image_dir, IMAGE_SUFFIXES)
    if count < 1:
        raise ProtocolError(f"count must be at least 1, got {count}")
    labels = image_labels(image_dir, images)
    identities = labels if labels is not None else [str(i) for i in range(len(images))]
    if len(set(identities)) < 2:
        raise ProtocolError(f"the sample protocol needs images of at least 2 identities under {image_dir}")
    rng = np.random.default_rng(seed)
    identity_array = np.array(identities)
    targets = rng.choice(len(images), size=count, replace=count > len(images))
    pairs = []
    for target in targets:
        candidates = np.flatnonzero(identity_array != identity_array[target])
        source = int(rng.choice(candidates))
        pairs.append(
            Pair(
                source=images[source],
                target=images[int(target)],
                output=None,
                label=labels[source] if labels is not None else None,
            )
        )
    return pairs


def sample_protocol(
    image_dir: str | Path, output_dir: str | Path, count: int, seed: int = 0, pairs_name: str = "pairs.tsv"
) -> Path:
    """Write the `sample` protocol's pairs file to `output_dir/pairs_name`; returns its path."""
    image_dir = Path(image_dir)
    pairs = sample_pairs(image_dir, count, seed)
    comment = f"sample protocol: {count} pairs from {image_dir.resolve()}, seed {seed}"
    return write_pairs(pairs, Path(output_dir) / pairs_name, comment=comment)
