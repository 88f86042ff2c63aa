"""What the invisible watermark survives: detection rate after JPEG re-encodes, resizes and H.264 re-encodes, the
false-positive rate on unmarked pictures, and what it costs (PSNR, milliseconds a frame).

    python benchmarks/watermark.py [--photos 200] [--json benchmarks/results/watermark.json]

Needs ../shared/data: LFW photos (250 x 250), wild/couple.jpg (2280 x 1588) and video/talking_head_1.mp4 (its first
`--video-seconds`, written through clipswap's VideoWriter with the mark, then re-encoded by ffmpeg). About 2 minutes
on the 2-core development machine. "detected" means `watermark.read(...).found` (at least 56 of the 64 bits); a
video counts frame by frame.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
from PIL import Image

from clipswap.atomic import write_text_atomic
from clipswap.media import watermark
from clipswap.media.images import read_image
from clipswap.media.video import VideoReader, VideoWriter

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


ATTACKS = {
    "none": lambda image: image,
    "jpeg q90": lambda image: jpeg(image, 90),
    "jpeg q75": lambda image: jpeg(image, 75),
    "jpeg q50": lambda image: jpeg(image, 50),
    "resize 0.5x": lambda image: resize(image, 0.5),
    "resize 0.5x + jpeg q75": lambda image: jpeg(resize(image, 0.5), 75),
    "resize 1.5x": lambda image: resize(image, 1.5),
    "brightness +20": lambda image: np.clip(image.astype(np.int16) + 20, 0, 255).astype(np.uint8),
    "contrast x1.2": lambda image: np.clip((image.astype(np.float32) - 128) * 1.2 + 128, 0, 255).astype(np.uint8),
    "crop 10 % each side": lambda image: image[image.shape[0] // 10: -image.shape[0] // 10,
                                               image.shape[1] // 10: -image.shape[1] // 10],
    "mirror": lambda image: image[:, ::-1],
}


def bench_photos(paths: list[Path]) -> dict:
    detected = {name: 0 for name in ATTACKS}
    false_positive = 0
    psnr, seconds = [], []
    for path in paths:
        image = read_image(path)
        start = time.perf_counter()
        marked = watermark.embed(image)
        seconds.append(time.perf_counter() - start)
        psnr.append(cv2.PSNR(image, marked))
        false_positive += watermark.read(image).found
        for name, attack in ATTACKS.items():
            detected[name] += watermark.read(np.ascontiguousarray(attack(marked))).found
    count = len(paths)
    return {
        "photos": count,
        "detection_rate": {name: hits / count for name, hits in detected.items()},
        "false_positive_rate_unmarked": false_positive / count,
        "psnr_db_mean": float(np.mean(psnr)),
        "psnr_db_min": float(np.min(psnr)),
        "embed_ms_median": 1000 * float(np.median(seconds)),
    }


def reencode(source: Path, output: Path, arguments: list[str]) -> None:
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
               *arguments, "-an", str(output)]
    subprocess.run(command, check=True)


def detection_in_video(path: Path) -> tuple[int, int]:
    found = total = 0
    with VideoReader(path) as reader:
        for frame in reader:
            total += 1
            found += watermark.read(frame).found
    return found, total


def bench_video(clip: Path, seconds: float, folder: Path) -> dict:
    cut = folder / "cut.mp4"
    reencode(clip, cut, ["-t", str(seconds), "-c:v", "libx264", "-crf", "18"])
    marked = folder / "marked.mp4"
    embed_seconds = []
    with VideoReader(cut) as reader, VideoWriter(marked, reader.info, watermark=False) as writer:
        size = reader.info.size
        for frame in reader:
            start = time.perf_counter()
            frame = watermark.embed(frame)
            embed_seconds.append(time.perf_counter() - start)
            writer.write(frame)
    with VideoReader(DATA / "video" / "multi_face_1080p.mp4") as reader:
        big = next(iter(reader)).copy()
    big_seconds = []
    for _ in range(5):
        start = time.perf_counter()
        watermark.embed(big)
        big_seconds.append(time.perf_counter() - start)
    results = {"clip": clip.name, "size": list(size), "seconds": seconds,
               "embed_ms_per_frame_median": 1000 * float(np.median(embed_seconds)),
               "embed_ms_1080p_frame_median": 1000 * float(np.median(big_seconds))}
    variants = {
        "as written (libx264, clipswap's settings)": None,
        "h264 crf 23": ["-c:v", "libx264", "-crf", "23"],
        "h264 crf 28": ["-c:v", "libx264", "-crf", "28"],
        "h264 crf 23, scaled to half": ["-vf", "scale=iw/2:-2", "-c:v", "libx264", "-crf", "23"],
        "vp9 crf 40": ["-c:v", "libvpx-vp9", "-crf", "40", "-b:v", "0"],
    }
    rates = {}
    for name, arguments in variants.items():
        path = marked
        if arguments is not None:
            path = folder / f"variant{len(rates)}{'.webm' if 'vp9' in name else '.mp4'}"
            reencode(marked, path, arguments)
        found, total = detection_in_video(path)
        rates[name] = found / total
    found, total = detection_in_video(cut)
    results["frame_detection_rate"] = rates
    results["false_positive_rate_unmarked_frames"] = found / total
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--video-seconds", type=float, default=4.0)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "watermark.json")
    args = parser.parse_args()
    if not (DATA / "lfw").is_dir():
        raise SystemExit(f"needs the shared data at {DATA}")
    lfw = sorted((DATA / "lfw").glob("*/*.jpg"))
    step = max(1, len(lfw) // args.photos)
    photos = bench_photos(lfw[::step][: args.photos])
    wild = bench_photos([DATA / "wild" / "couple.jpg"])
    with tempfile.TemporaryDirectory() as folder:
        video = bench_video(DATA / "video" / "talking_head_1.mp4", args.video_seconds, Path(folder))
    report = {"machine": platform.processor() or platform.machine(), "payload": watermark.PAYLOAD.decode(),
              "step": watermark.STEP, "grid": watermark.GRID, "match_bits": watermark.MATCH_BITS,
              "lfw_photos": photos, "wild_photo": wild, "video": video}
    print(f"{'attack':<28} {'LFW photos':>11} {'couple.jpg':>11}")
    for name in ATTACKS:
        print(f"{name:<28} {photos['detection_rate'][name]:>10.1%} {wild['detection_rate'][name]:>10.1%}")
    print(f"{'unmarked (false positives)':<28} {photos['false_positive_rate_unmarked']:>10.1%} "
          f"{wild['false_positive_rate_unmarked']:>10.1%}")
    print(f"PSNR {photos['psnr_db_mean']:.1f} dB (min {photos['psnr_db_min']:.1f}); embed "
          f"{photos['embed_ms_median']:.1f} ms (250 px), {wild['embed_ms_median']:.0f} ms (couple.jpg), "
          f"{video['embed_ms_1080p_frame_median']:.0f} ms (a 1080p frame)")
    print(f"\nvideo {video['clip']} {video['size'][0]}x{video['size'][1]}, {video['seconds']} s; embed "
          f"{video['embed_ms_per_frame_median']:.1f} ms a frame")
    for name, rate in video["frame_detection_rate"].items():
        print(f"  {name:<44} {rate:>7.1%} of frames")
    print(f"  {'unmarked frames (false positives)':<44} {video['false_positive_rate_unmarked_frames']:>7.1%}")
    write_text_atomic(args.json, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
