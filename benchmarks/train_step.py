"""Seconds per training step, images per second and cores kept busy, fp32 vs bf16 (and with --xla, XLA), for

* `--preset paper` (default): 256 px, ArcFace-R50 identity, CLIP ViT-B/32 input and contrastive loss, VGG16
  perceptual, all terms on, batch 2. Weights are random: ArcFace-R50 (build_arcface), CLIP ViT-B/32
  (build_clip_image_encoder, randomly initialised -- no pretrained CLIP is needed to time the step) and VGG16
  (weights=None); the cost does not depend on the values.
* `--preset demo`: the demo model's step (128 px, SFace identity, teacher term, batch 8 by default), with the
  embedded SFace.

    python benchmarks/train_step.py [--preset paper|demo] [--batch N] [--steps 3] [--precisions fp32 bf16] [--xla]

Prints a table and writes benchmarks/results/train_step[_demo].json. Each configuration runs in its own subprocess
(the Keras dtype policy is global). The first step (tracing) is reported separately and excluded from the mean.
"Cores busy" is the process's CPU time over the wall time of the timed steps (2.0 = both cores of this machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "train_step.json"


def measure(preset: str, precision: str, xla: bool, batch: int, steps: int) -> dict:
    import numpy as np
    import tensorflow as tf

    from clipswap.config import resolve_config
    from clipswap.training.run import build_trainer, load_identity_encoder, set_precision

    # The paper's encoders are random here (module docstring), so its files are not asked for (no check_runnable).
    config = resolve_config(preset, overrides={"batch_size": batch, "precision": precision, "xla": xla})
    set_precision(precision)
    size = config.model.image_size
    if preset == "paper":
        from clipswap.losses.perceptual import vgg16_features
        from clipswap.models.arcface import build_arcface
        from clipswap.models.clip_encoder import build_clip_image_encoder

        trainer = build_trainer(config, build_arcface(), build_clip_image_encoder("clip_vit_base_patch32", size),
                                perceptual_extractor=vgg16_features(weights=None))
    else:
        trainer = build_trainer(config, load_identity_encoder(config), None)
    trainer.make_train_function()
    rng = np.random.default_rng(0)
    batch_data = {
        "target": rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32"),
        "source": rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32"),
        "same": np.array([1.0] + [0.0] * (batch - 1), "float32"),
    }
    if config.weights.teacher:
        batch_data["teacher"] = rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32")
    iterator = iter(tf.data.Dataset.from_tensors(batch_data).repeat())
    times = []
    logs = {}
    cpu_started = 0.0
    for index in range(steps + 1):
        if index == 1:
            cpu_started = time.process_time()
        started = time.perf_counter()
        trainer.reset_metrics()
        logs = {k: float(v) for k, v in trainer.train_function(iterator).items()}
        times.append(time.perf_counter() - started)
    mean = float(np.mean(times[1:]))
    cores = (time.process_time() - cpu_started) / float(np.sum(times[1:]))
    label = precision + ("+xla" if xla else "")
    return {"precision": label, "batch": batch, "first_step_s": times[0], "step_times_s": times[1:],
            "seconds_per_step": mean, "images_per_s": batch / mean, "cores_busy": cores,
            "terms": sorted(logs), "all_finite": all(np.isfinite(v) for v in logs.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["paper", "demo"], default="paper")
    parser.add_argument("--batch", type=int, default=None, help="default: 2 (paper), 8 (demo)")
    parser.add_argument("--xla", action="store_true", help="also time each precision with XLA (jit_compile)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the first (tracing) one")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    batch = args.batch or (2 if args.preset == "paper" else 8)
    if args.one:
        precision, _, xla = args.one.partition("+")
        print("RESULT " + json.dumps(measure(args.preset, precision, bool(xla), batch, args.steps)))
        return
    rows = []
    variants = [p for p in args.precisions] + ([f"{p}+xla" for p in args.precisions] if args.xla else [])
    for variant in variants:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        out = subprocess.run([sys.executable, __file__, "--one", variant, "--preset", args.preset, "--batch",
                              str(batch), "--steps", str(args.steps)], capture_output=True, text=True, env=env)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            # Recorded, not fatal: the other variants still get measured (e.g. bf16 under XLA may not compile).
            reason = next((x.strip() for x in reversed(out.stderr.splitlines()) if x.strip()), "no output")
            rows.append({"precision": variant, "batch": batch, "failed": reason[-300:]})
            continue
        rows.append(json.loads(line[len("RESULT "):]))
    print(f"{'precision':<12}{'batch':>6}{'first step s':>14}{'s/step':>10}{'images/s':>10}{'cores busy':>12}")
    for row in rows:
        if "failed" in row:
            print(f"{row['precision']:<12}{row['batch']:>6}  failed: {row['failed'][:90]}")
            continue
        print(f"{row['precision']:<12}{row['batch']:>6}{row['first_step_s']:>14.1f}{row['seconds_per_step']:>10.2f}"
              f"{row['images_per_s']:>10.3f}{row['cores_busy']:>12.2f}")
    results = RESULTS if args.preset == "paper" else RESULTS.with_name("train_step_demo.json")
    results.parent.mkdir(parents=True, exist_ok=True)
    described = {"paper": "paper (256 px, ArcFace-R50 + CLIP ViT-B/32 random weights, VGG16 random)",
                 "demo": "demo (128 px, base 16, embedded SFace, teacher term, id augmentation)"}
    results.write_text(json.dumps({
        "preset": described[args.preset],
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "note": "random-weight CLIP ViT-B/32, ArcFace-R50 and VGG16; the machine was shared with other jobs",
        "rows": rows}, indent=2) + "\n")
    print(f"wrote {results}")


if __name__ == "__main__":
    main()
