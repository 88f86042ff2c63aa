"""Live tab speed: a recorded clip fed frame by frame through clipswap.ui.live.LiveSwapper.process (the function the
page's webcam stream calls, tracking and smoothing on) at 640 x 480, for each runtime, with and without the
invisible watermark on every returned frame (on by default in the page).

    python benchmarks/live.py [--model demo] [--frames 100] [--runtimes tf openvino onnxruntime]
                              [--json benchmarks/results/live.json]

Needs ../shared/data/video/talking_head_1.mp4 (one face; cropped to 4:3 and scaled to 640 x 480 like a webcam's
frames) and inference.sh's source face (scikit-image's astronaut). Frames are processed back to back after
`--warmup` frames (trace, first OpenVINO/ONNX inference, dlib's first call): "fps" is frames over the wall-clock
time, latency the per-frame time of process() (its mean, median and 95th percentile), and the per-stage means
from the swapper's StageTimer, in wall-clock and in CPU milliseconds. CPU time is the process's (every thread,
so a runtime's worker threads count): on a loaded machine wall time includes the waits for a core, CPU time does
not, so "cpu ms" is the work a frame costs, and "fps per CPU" (frames over process CPU seconds) is what the
stream would reach with one core to itself and no parallelism. "rest" is what process() spends outside the
swapper's stages (the watermark's embed, when on). The machine's CPU (lscpu's model name) and its load average at
the start and the end are recorded, because other processes on a 2-core CPU change the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from clipswap.atomic import write_text_atomic  # noqa: E402
from clipswap.media.images import read_image  # noqa: E402
from clipswap.media.video import VideoReader  # noqa: E402
from clipswap.ui.live import LiveSwapper  # noqa: E402
from clipswap.ui.models import ModelCache, ModelKey, PasteOptions  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO.parent / "shared" / "data" / "video" / "talking_head_1.mp4"
#: The webcam frame size the Live tab is measured at.
SIZE = (640, 480)


def webcam_frames(path: Path, count: int) -> list[np.ndarray]:
    """The first `count` frames of `path`, centre-cropped to 4:3 and scaled to SIZE ([480, 640, 3] uint8 RGB)."""
    frames = []
    with VideoReader(path) as reader:
        for frame in reader:
            height, width = frame.shape[:2]
            crop = min(width, height * 4 // 3)
            left = (width - crop) // 2
            frames.append(cv2.resize(frame[:, left:left + crop], SIZE, interpolation=cv2.INTER_AREA))
            if len(frames) == count:
                break
    return frames


def cpu_model() -> str:
    result = subprocess.run(["lscpu"], capture_output=True, text=True, check=False)
    names = [line.split(":", 1)[1].strip() for line in result.stdout.splitlines() if line.startswith("Model name")]
    return names[0] if names else platform.processor()


def measure(cache: ModelCache, key: ModelKey, source: np.ndarray, frames: list[np.ndarray], warmup: int,
            watermark: bool) -> dict:
    swapper, line = cache.swapper(key, PasteOptions())
    live = LiveSwapper(swapper, source, watermark=watermark)
    for frame in frames[:warmup]:
        live.process(frame)
    swapper.timer.reset()
    latencies, faces = [], 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for frame in frames[warmup:]:
        result = live.process(frame)
        latencies.append(result.latency)
        faces += result.faces
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    count = len(latencies)
    milliseconds = 1000 * np.asarray(latencies)
    per_frame = max(1, swapper.timer.frames)
    stage_ms = {name: 1000 * value / per_frame for name, value in swapper.timer.seconds.items()}
    stage_cpu_ms = {name: 1000 * value / per_frame for name, value in swapper.timer.cpu_seconds.items()}
    # What process() spends outside the swapper's stages: the watermark's embed, when on.
    stage_ms["rest"] = 1000 * seconds / count - sum(stage_ms.values())
    stage_cpu_ms["rest"] = 1000 * cpu_seconds / count - sum(stage_cpu_ms.values())
    return {
        "runtime": key.runtime, "precision": key.precision, "watermark": watermark, "models": line, "frames": count,
        "faces": faces, "fps": count / seconds, "fps_per_cpu": count / cpu_seconds,
        "cpu_ms_per_frame": 1000 * cpu_seconds / count, "latency_ms_mean": float(milliseconds.mean()),
        "latency_ms_p50": float(np.median(milliseconds)), "latency_ms_p95": float(np.percentile(milliseconds, 95)),
        "stage_ms": stage_ms, "stage_cpu_ms": stage_cpu_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--runtimes", nargs="+", default=["tf", "openvino", "onnxruntime"])
    parser.add_argument("--frames", type=int, default=100, help="frames measured, after the warm-up")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "live.json")
    args = parser.parse_args()

    import skimage

    source = read_image(Path(skimage.data.data_dir) / "astronaut.png")
    frames = webcam_frames(args.video, args.frames + args.warmup)
    if len(frames) < args.frames + args.warmup:
        frames = (frames * (1 + (args.frames + args.warmup) // len(frames)))[: args.frames + args.warmup]
    load = os.getloadavg()
    cache = ModelCache()
    rows = [measure(cache, ModelKey(args.model, runtime, args.precision), source, frames, args.warmup, watermark)
            for runtime in args.runtimes for watermark in (True, False)]
    end_load = os.getloadavg()
    print(f"{cpu_model()}, {os.cpu_count()} CPUs, load average {load[0]:.2f} at the start and {end_load[0]:.2f} at "
          f"the end; {args.model} model, {SIZE[0]} x {SIZE[1]}, {args.frames} frames of {args.video.name}")
    print("| runtime | precision | watermark | fps | fps per CPU | cpu ms/frame | latency mean ms | p50 | p95 "
          "| per-stage ms, wall / cpu |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        stages = ", ".join(f"{name} {value:.1f} / {row['stage_cpu_ms'][name]:.1f}"
                           for name, value in row["stage_ms"].items())
        print(f"| {row['runtime']} | {row['precision']} | {'on' if row['watermark'] else 'off'} | {row['fps']:.1f} "
              f"| {row['fps_per_cpu']:.1f} | {row['cpu_ms_per_frame']:.1f} | {row['latency_ms_mean']:.1f} "
              f"| {row['latency_ms_p50']:.1f} | {row['latency_ms_p95']:.1f} | {stages} |")
    payload = {
        "benchmark": "live", "command": "python benchmarks/live.py " + " ".join(os.sys.argv[1:]),
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_start": load, "load_average_at_end": end_load},
        "model": args.model, "size": SIZE, "video": args.video.name, "rows": rows,
    }
    write_text_atomic(args.json, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
