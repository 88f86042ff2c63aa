"""Swap pipeline timings: per-face time of each stage and end to end for one photo, and video frames per second,
in fp32 and bf16, with a random-weight full-size generator (256, SFace identity so it runs offline) and YuNet.

    python benchmarks/swap.py [--repeats 3] [--video-seconds 1] [--json benchmarks/results/swap.json]

Needs ../shared/data (wild/couple.jpg: 2 faces, 2280x1588; video/multi_face_1080p.mp4; an LFW face as source).
Takes about 5 minutes on the 2-core development machine. "source identity" is set_source (detect, align and encode
the source face), paid once per run and not per face: its first call (what a run pays, including the encoder's
first-call setup) and the median of `--repeats` further calls. Per-face stage times are wall-clock sums over
swap_frame calls divided by the number of faces generated ("identity" per face only does work with --reference-face,
so it reads 0 here); "photo end to end" is one swap_frame call on the photo (detect + all stages, both faces), after
one warm-up call that builds the tf.function trace; "video" runs the whole streamed pipeline (decode, swap, encode),
whose set_source time is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import imageio_ffmpeg  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from clipswap.atomic import write_text_atomic  # noqa: E402
from clipswap.checkpoints.native import init_generator, load_any_generator  # noqa: E402
from clipswap.config import ModelConfig  # noqa: E402
from clipswap.face.yunet import YuNetDetector  # noqa: E402
from clipswap.inference.pipeline import SwapRequest, run_swap  # noqa: E402
from clipswap.inference.swapper import SOURCE_STAGE, STAGES, FaceSwapper  # noqa: E402
from clipswap.media.images import read_image  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def bench_precision(checkpoint, precision: str, source: np.ndarray, photo: np.ndarray, video: Path, out: Path,
                    repeats: int) -> dict:
    swapper = FaceSwapper.from_checkpoint(checkpoint, YuNetDetector(), precision=precision)
    source_runs = []
    for _ in range(1 + repeats):
        start = time.perf_counter()
        swapper.set_source(source)
        source_runs.append(time.perf_counter() - start)
    swapper.timer.reset()
    swapper.swap_frame(photo)  # warm-up: traces the generator
    swapper.timer.reset()
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        _, faces = swapper.swap_frame(photo)
        walls.append(time.perf_counter() - start)
    per_face = {stage: swapper.timer.seconds.get(stage, 0.0) / swapper.timer.faces for stage in STAGES}
    swapper.timer.reset()
    request = SwapRequest(source=DATA / "lfw" / "Aaron_Sorkin" / "Aaron_Sorkin_0001.jpg", target=video,
                          output=out / f"video_{precision}.mp4", progress=False)
    summary = run_swap(request, swapper=swapper)  # calls set_source once more: timed as SOURCE_STAGE
    video_source = swapper.timer.seconds.get(SOURCE_STAGE, 0.0)
    video_per_face = {stage: swapper.timer.seconds.get(stage, 0.0) / max(1, swapper.timer.faces) for stage in STAGES}
    return {
        "source_identity_seconds": {"first_call": source_runs[0], "median": float(np.median(source_runs[1:])),
                                    "runs": source_runs},
        "photo": {"faces": faces, "per_face_seconds": per_face, "end_to_end_seconds": float(np.median(walls)),
                  "end_to_end_runs": walls},
        "video": {"frames": summary.frames, "faces": summary.faces, "seconds": summary.seconds,
                  "frames_per_second": summary.frames / summary.seconds, "per_face_seconds": video_per_face,
                  "source_identity_seconds": video_source},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--video-seconds", type=float, default=1.0)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "swap.json")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is absent: the benchmark needs the shared face data beside the checkout")
    source = read_image(DATA / "lfw" / "Aaron_Sorkin" / "Aaron_Sorkin_0001.jpg")
    photo = read_image(DATA / "wild" / "couple.jpg")
    results: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        video = out / "clip.mp4"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i",
                        str(DATA / "video" / "multi_face_1080p.mp4"), "-t", str(args.video_seconds), str(video)],
                       check=True)
        checkpoint = load_any_generator(init_generator(ModelConfig(identity_encoder="sface"), out / "g.keras")
                                        .with_suffix(".keras"))
        for precision in ("fp32", "bf16"):
            results[precision] = bench_precision(checkpoint, precision, source, photo, video, out, args.repeats)
    payload = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
                    "tensorflow": tf.__version__, "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]},
        "setup": {"generator": "ModelConfig(identity_encoder='sface'), 256, random weights", "detector": "YuNet",
                  "photo": "wild/couple.jpg (2280x1588, 2 faces)",
                  "video": f"video/multi_face_1080p.mp4, first {args.video_seconds} s (1920x1080, 25 fps)",
                  "repeats": args.repeats},
        "results": results,
    }
    print("source identity once per run (set_source: first call, median of repeats) in seconds; per-face stage seconds "
          "on the photo; photo end to end (2 faces) in seconds; video frames per second")
    header = (f"{'':<8}{'source 1st':>11}{'source':>9}" + "".join(f"{stage:>10}" for stage in STAGES)
              + f"{'photo e2e':>11}{'video fps':>11}")
    print(header)
    for precision, result in results.items():
        once = result["source_identity_seconds"]
        stages = "".join(f"{result['photo']['per_face_seconds'][s]:>10.4f}" for s in STAGES)
        print(f"{precision:<8}{once['first_call']:>11.4f}{once['median']:>9.4f}{stages}"
              f"{result['photo']['end_to_end_seconds']:>11.3f}{result['video']['frames_per_second']:>11.2f}")
    write_text_atomic(args.json, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
