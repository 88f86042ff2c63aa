"""The generator against this machine's compute floor, for every runtime and precision, in one run.

    python benchmarks/generator.py [--repeats 10] [--json benchmarks/results/generator.json]

Measures, in one process:
- the GEMM peak: TensorFlow matmul of two 2048 x 2048 matrices, fp32 and bf16 (GFLOP/s = 2 N^3 / time);
- the release-size generator (256 px, base width 64, random weights; SFace's 128-d identity input so it runs
  offline: the convolutions, 28.85 GMACs, are the release's) per face at batch 1, for each runtime and precision
  (clipswap.inference.runtime), and its ratio to the floor (2 x the trained graph's MACs / peak). Every engine runs
  the inference graph (clipswap.models.generator.inference_generator: the same function, 17.66 GMACs);
- OpenVINO on the trained graph as it was before the inference graph (the issue's "today's graph": the Keras model
  exported as it is), timed interleaved with OpenVINO on the inference graph, call by call, fp32 and bf16;
- the photo end to end (one LFW face: detect, align, generate, blend) per runtime, after a warm-up call, and its
  ratio to that runtime's generator time;
- video frames per second at 720p with one face (talking_head_2.mp4 scaled into a 1280 x 720 frame), the whole
  streamed `clipswap swap` pipeline (decode, track, swap, encode), from a 2 s and a 6 s cut so start-up cancels:
  fps = (frames_6 - frames_2) / (seconds_6 - seconds_2).

Needs ../shared/data and the `export` extra for the OpenVINO and ONNX Runtime rows (absent runtimes are skipped and
listed). Takes about 10 minutes on the 2-core development machine; run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import importlib.util
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
from clipswap.inference.export import load_exported  # noqa: E402
from clipswap.inference.pipeline import SwapRequest, run_swap  # noqa: E402
from clipswap.inference.runtime import exported_generator  # noqa: E402
from clipswap.inference.swapper import FaceSwapper, compile_generator, generator_in_precision  # noqa: E402
from clipswap.media.images import read_image  # noqa: E402
from clipswap.models.cost import count_macs  # noqa: E402
from clipswap.models.generator import inference_generator  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: (runtime, precision) rows, and the Python module each exported runtime needs.
ENGINES = (("tf", "fp32"), ("tf", "bf16"), ("openvino", "fp32"), ("openvino", "bf16"), ("onnxruntime", "fp32"))
NEEDS = {"openvino": "openvino", "onnxruntime": "onnxruntime"}


def cpu_description() -> dict:
    """The CPU's model name and which of the matrix extensions the peaks depend on it has (Linux /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": platform.processor(), "flags": []}
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return {"model": model, "flags": sorted(set(flags) & {"avx512f", "avx512_bf16", "amx_tile", "amx_bf16"})}


def median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def gemm_peak(dtype: tf.DType, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an n x n x n matmul in `dtype`."""
    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    b = tf.cast(tf.random.normal((n, n), dtype=tf.float32), dtype)
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    seconds = median_seconds(lambda: matmul(a, b).numpy(), repeats)
    return 2 * n**3 / seconds / 1e9


def generator_call(checkpoint, runtime: str, precision: str):
    """A batch-1 callable over numpy arrays for one engine."""
    if runtime == "tf":
        config = checkpoint.config
        compiled = compile_generator(generator_in_precision(checkpoint.model, precision), config.image_size,
                                     config.id_input_dim)
        return lambda x, z: compiled(tf.constant(x), tf.constant(z)).numpy()
    engine = exported_generator(checkpoint, runtime, precision)
    return lambda x, z: engine([x, z])


def interleaved_ms(calls: dict, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median milliseconds of each callable, called in turn (one of each per round), so a slower or faster spell of
    the machine falls on all of them alike."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) * 1e3 for name, values in times.items()}


def openvino_graphs(checkpoint, x, z, tmp: Path, repeats: int) -> dict:
    """OpenVINO on the trained graph (the Keras model exported as it is) against OpenVINO on the inference graph
    (what `--runtime openvino` runs), per precision, interleaved."""
    from clipswap.inference.export import input_signature

    result = {}
    trained = tmp / "trained_graph.xml"
    checkpoint.model.export(str(trained), format="openvino", input_signature=input_signature(checkpoint.model),
                            verbose=False)
    folded = inference_generator(checkpoint.model)
    inference = tmp / "inference_graph.xml"
    folded.export(str(inference), format="openvino", input_signature=input_signature(folded), verbose=False)
    for precision in ("fp32", "bf16"):
        runners = {"trained": load_exported("openvino", trained, precision),
                   "inference": load_exported("openvino", inference, precision)}
        ms = interleaved_ms({name: (lambda run=run: run([x, z])) for name, run in runners.items()}, repeats)
        result[precision] = {"trained_graph_ms": ms["trained"], "inference_graph_ms": ms["inference"],
                             "inference_over_trained": ms["inference"] / ms["trained"]}
    return result


def clip_720p(source: Path, seconds: float, out: Path) -> Path:
    """`seconds` of `source` scaled to 720 px high and centred in a 1280 x 720 frame, H.264."""
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(source), "-t", str(seconds),
                    "-vf", "scale=-2:720,pad=1280:720:(ow-iw)/2:0", "-c:v", "libx264", "-crf", "18", "-an", str(out)],
                   check=True)
    return out


def video_fps(checkpoint_path: Path, runtime: str, precision: str, source: Path, clips: dict[float, Path],
              out: Path) -> dict:
    runs = {}
    for seconds, clip in clips.items():
        start = time.perf_counter()
        output = out / f"v_{runtime}_{precision}_{seconds:g}.mp4"
        summary = run_swap(SwapRequest(source=source, target=clip, output=output, model=checkpoint_path,
                                       runtime=runtime, precision=precision, progress=False))
        runs[seconds] = (summary.frames, time.perf_counter() - start)
    (f_short, t_short), (f_long, t_long) = runs[min(runs)], runs[max(runs)]
    return {"fps": (f_long - f_short) / (t_long - t_short), "runs": {str(k): list(v) for k, v in runs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/generator.json"))
    parser.add_argument("--no-video", action="store_true", help="skip the video rows")
    args = parser.parse_args()

    peaks = {"fp32": gemm_peak(tf.float32, repeats=args.repeats), "bf16": gemm_peak(tf.bfloat16, repeats=args.repeats)}
    config = ModelConfig(identity_encoder="sface")
    source_path = DATA / "lfw" / "Aaron_Sorkin" / "Aaron_Sorkin_0001.jpg"
    photo = read_image(DATA / "lfw" / "Abdullah_Gul" / "Abdullah_Gul_0001.jpg")
    source = read_image(source_path)
    rows, skipped, graphs = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint_path = init_generator(config, tmp / "g256.keras")
        checkpoint = load_any_generator(checkpoint_path)
        specs = [(256, 256, 3), (config.id_input_dim,)]
        gflop = 2 * sum(count_macs(checkpoint.model, specs)) / 1e9
        inference_gflop = 2 * sum(count_macs(inference_generator(checkpoint.model), specs)) / 1e9
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (1, 256, 256, 3)).astype(np.float32)
        z = rng.normal(size=(1, config.id_input_dim)).astype(np.float32)
        clips = {}
        if not args.no_video:
            talking = DATA / "video" / "talking_head_2.mp4"
            clips = {s: clip_720p(talking, s, tmp / f"clip_{s:g}.mp4") for s in (2.0, 6.0)}
        for runtime, precision in ENGINES:
            if runtime in NEEDS and importlib.util.find_spec(NEEDS[runtime]) is None:
                skipped.append(f"{runtime} {precision}: {NEEDS[runtime]} is not installed (the export extra)")
                continue
            call = generator_call(checkpoint, runtime, precision)
            seconds = median_seconds(lambda call=call: call(x, z), args.repeats)
            swapper = FaceSwapper.from_checkpoint(checkpoint, YuNetDetector(), precision=precision, runtime=runtime)
            swapper.set_source(source)
            photo_seconds = median_seconds(lambda swapper=swapper: swapper.swap_frame(photo), args.repeats, warmup=1)
            row = {
                "runtime": runtime, "precision": precision, "generator_s": seconds,
                "x_floor_bf16": seconds / (gflop / peaks["bf16"]), "x_floor_fp32": seconds / (gflop / peaks["fp32"]),
                "photo_s": photo_seconds, "photo_over_generator": photo_seconds / seconds,
            }
            if clips:
                row["video_720p"] = video_fps(checkpoint_path, runtime, precision, source_path, clips, tmp)
            rows.append(row)
            if runtime == "openvino" and precision == "bf16":
                graphs = openvino_graphs(checkpoint, x, z, tmp, 2 * args.repeats)
            print(f"{runtime:<12} {precision}: generator {seconds * 1e3:7.1f} ms ({row['x_floor_bf16']:.2f}x the bf16 "
                  f"floor), photo {photo_seconds * 1e3:7.1f} ms" +
                  (f", 720p video {row['video_720p']['fps']:.2f} fps" if clips else ""), flush=True)

    floor = {name: gflop / peak * 1e3 for name, peak in peaks.items()}
    print()
    print(f"GEMM peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s; generator {gflop:.2f} GFLOP "
          f"a face (inference graph {inference_gflop:.2f}): floor {floor['fp32']:.1f} ms fp32, {floor['bf16']:.1f} ms "
          "bf16")
    header = f"{'runtime':<12} {'precision':<9} {'generator ms':>12} {'x bf16 floor':>12} {'photo ms':>9} " \
             f"{'photo/gen':>9} {'720p fps':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        fps = f"{row['video_720p']['fps']:.2f}" if "video_720p" in row else "-"
        print(f"{row['runtime']:<12} {row['precision']:<9} {row['generator_s'] * 1e3:>12.1f} "
              f"{row['x_floor_bf16']:>12.2f} {row['photo_s'] * 1e3:>9.1f} {row['photo_over_generator']:>9.2f} "
              f"{fps:>9}")
    for line in skipped:
        print(f"skipped: {line}")
    if graphs:
        print()
        print("OpenVINO, trained graph against inference graph (interleaved):")
        for precision, entry in graphs.items():
            print(f"  {precision}: trained {entry['trained_graph_ms']:.1f} ms, inference "
                  f"{entry['inference_graph_ms']:.1f} ms ({entry['inference_over_trained']:.2f}x)")
    payload = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "cpu": cpu_description()},
        "gemm_gflops": peaks, "generator_gflop": gflop, "inference_graph_gflop": inference_gflop, "floor_ms": floor,
        "rows": rows, "openvino_trained_vs_inference_graph": graphs, "skipped": skipped,
        "repeats": args.repeats,
    }
    write_text_atomic(args.json, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
