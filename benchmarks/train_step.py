"""Seconds per training step of the `paper` preset (256 px, ArcFace-R50 identity, CLIP ViT-B/32 input and
contrastive loss, VGG16 perceptual, all terms on) at batch 2 on this machine, fp32 vs bf16, and images per second.

Weights are random: ArcFace-R50 (build_arcface), CLIP ViT-B/32 (build_clip_image_encoder, randomly initialised --
no pretrained CLIP is needed to time the step) and VGG16 (weights=None); the cost does not depend on the values.

    python benchmarks/train_step.py [--batch 2] [--steps 3] [--precisions fp32 bf16]

Prints a table and writes benchmarks/results/train_step.json. Each precision runs in its own subprocess (the Keras
dtype policy is global). The first step (tracing) is reported separately and excluded from the mean.
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


def measure(precision: str, batch: int, steps: int) -> dict:
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    from clipswap.losses.perceptual import vgg16_features  # noqa: PLC0415
    from clipswap.models.arcface import build_arcface  # noqa: PLC0415
    from clipswap.models.clip_encoder import build_clip_image_encoder  # noqa: PLC0415
    from clipswap.training.config import resolve_config  # noqa: PLC0415
    from clipswap.training.run import build_trainer, effective_config, set_precision  # noqa: PLC0415

    config, _ = effective_config(
        resolve_config("paper", overrides={"batch_size": batch, "precision": precision,
                                           "arcface_path": "random", "clip_preset": "random"})
    )
    set_precision(precision)
    size = config.model.image_size
    trainer = build_trainer(config, build_arcface(), build_clip_image_encoder("clip_vit_base_patch32", size),
                            perceptual_extractor=vgg16_features(weights=None))
    trainer.make_train_function()
    rng = np.random.default_rng(0)
    batch_data = {
        "target": rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32"),
        "source": rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32"),
        "same": np.array([1.0] + [0.0] * (batch - 1), "float32"),
    }
    iterator = iter(tf.data.Dataset.from_tensors(batch_data).repeat())
    times = []
    logs = {}
    for _ in range(steps + 1):
        started = time.perf_counter()
        trainer.reset_metrics()
        logs = {k: float(v) for k, v in trainer.train_function(iterator).items()}
        times.append(time.perf_counter() - started)
    mean = float(np.mean(times[1:]))
    return {"precision": precision, "batch": batch, "first_step_s": times[0], "step_times_s": times[1:],
            "seconds_per_step": mean, "images_per_s": batch / mean,
            "terms": sorted(logs), "all_finite": all(np.isfinite(v) for v in logs.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the first (tracing) one")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(measure(args.one, args.batch, args.steps)))
        return
    rows = []
    for precision in args.precisions:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        out = subprocess.run([sys.executable, __file__, "--one", precision, "--batch", str(args.batch),
                              "--steps", str(args.steps)], capture_output=True, text=True, env=env)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"{precision} failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(line[len("RESULT "):]))
    print(f"{'precision':<10}{'batch':>6}{'first step s':>14}{'s/step':>10}{'images/s':>10}")
    for row in rows:
        print(f"{row['precision']:<10}{row['batch']:>6}{row['first_step_s']:>14.1f}{row['seconds_per_step']:>10.2f}"
              f"{row['images_per_s']:>10.3f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "preset": "paper (256 px, ArcFace-R50 + CLIP ViT-B/32 random weights, VGG16 random)",
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "note": "random-weight CLIP ViT-B/32, ArcFace-R50 and VGG16; the machine was shared with other jobs",
        "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
