"""Seconds per training step, images per second and cores kept busy, fp32 vs bf16 (and with --xla, XLA), for

* `--preset paper` (default): 256 px, ArcFace-R50 identity, CLIP ViT-B/32 input and contrastive loss, VGG16
  perceptual, all terms on, batch 2. Weights are random: ArcFace-R50 (build_arcface), CLIP ViT-B/32
  (build_clip_image_encoder, randomly initialised -- no pretrained CLIP is needed to time the step) and VGG16
  (weights=None); the cost does not depend on the values.
* `--preset demo_warp`: the previous demo model's step (128 px, SFace identity, teacher term, batch 8 by default),
  with the embedded SFace.
* `--preset tiny`: the tiny preset's step (64 px, base 8, SFace identity, batch 8 by default).

    python benchmarks/train_step.py [--preset paper|demo_warp|tiny] [--batch N] [--steps 3] [--precisions fp32 bf16]
                                    [--xla] [--backends tf jax]

`--backends tf jax` times the TensorFlow step (SwapTrainer's train_function) and the JAX step (JaxSwapStep, jitted,
in a process where TensorFlow cannot be imported) on the same configuration and random batch; XLA variants are the
TensorFlow step's (the JAX step is always compiled by XLA).

Prints a table and writes benchmarks/results/train_step[_demo_warp|_tiny][_backends].json with the CPU model. Each
configuration runs in its own subprocess (the Keras backend and dtype policy are global). The first step (tracing and
compiling) is reported separately and excluded from the mean. "Cores busy" is the process's CPU time over the wall
time of the timed steps (2.0 = both cores of this machine).
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
BACKENDS = ("tf", "jax")


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def random_batch(config, batch: int) -> dict:
    """A random batch of the data pipeline's structure for `config` (teacher images when its loss reads them)."""
    import numpy as np

    rng = np.random.default_rng(0)
    size = config.model.image_size
    data = {"target": rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32"),
            "source": rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32"),
            "same": np.array([1.0] + [0.0] * (batch - 1), "float32")}
    if config.weights.teacher:
        data["teacher"] = rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32")
    return data


def timed(step, steps: int, batch: int, label: str) -> dict:
    """Run `step()` (one training step, returning its figures as floats) steps + 1 times; the first is the trace."""
    import numpy as np

    times, logs, cpu_started = [], {}, 0.0
    for index in range(steps + 1):
        if index == 1:
            cpu_started = time.process_time()
        started = time.perf_counter()
        logs = step()
        times.append(time.perf_counter() - started)
    mean = float(np.mean(times[1:]))
    cores = (time.process_time() - cpu_started) / float(np.sum(times[1:]))
    return {"precision": label, "batch": batch, "first_step_s": times[0], "step_times_s": times[1:],
            "seconds_per_step": mean, "images_per_s": batch / mean, "cores_busy": cores,
            "terms": sorted(logs), "all_finite": all(np.isfinite(v) for v in logs.values())}


def build_encoders(preset: str, config):
    """(identity encoder, CLIP or None, perceptual extractor or None): random ones for paper (module docstring)."""
    from clipswap.training.assembly import load_identity_encoder

    if preset != "paper":
        return load_identity_encoder(config), None, None
    from clipswap.losses.perceptual import vgg16_features
    from clipswap.models.arcface import build_arcface
    from clipswap.models.clip_encoder import build_clip_image_encoder

    size = config.model.image_size
    return build_arcface(), build_clip_image_encoder("clip_vit_base_patch32", size), vgg16_features(weights=None)


def measure_jax(preset: str, precision: str, batch: int, steps: int) -> dict:
    """The JAX step's row (KERAS_BACKEND=jax, TensorFlow unimportable: the caller's subprocess sets both)."""
    import keras
    import numpy as np

    from clipswap.config import resolve_config
    from clipswap.training.assembly import build_loss, build_networks, make_optimizers, set_precision
    from clipswap.training.jax_step import JaxSwapStep

    config = resolve_config(preset, overrides={"batch_size": batch, "precision": precision})
    set_precision(precision)
    identity, clip, perceptual = build_encoders(preset, config)
    keras.utils.set_random_seed(config.seed)
    generator, discriminator = build_networks(config.model, config.loss.discriminator_patch_blocks,
                                              config.loss.discriminator_paired)
    loss = build_loss(config, generator, discriminator, identity, clip, perceptual)
    step = JaxSwapStep(loss, *make_optimizers(config))
    data, holder = random_batch(config, batch), {"state": step.initial_state()}

    def one() -> dict:
        holder["state"], logs = step(holder["state"], data)
        return {k: float(np.asarray(v)) for k, v in logs.items()}  # waits for the step to finish

    return {**timed(one, steps, batch, precision), "backend": "jax"}


def measure(preset: str, precision: str, xla: bool, batch: int, steps: int) -> dict:
    """The TensorFlow step's row."""
    import tensorflow as tf

    from clipswap.config import resolve_config
    from clipswap.training.run import build_trainer, set_precision

    # The paper's encoders are random here (module docstring), so its files are not asked for (no check_runnable).
    config = resolve_config(preset, overrides={"batch_size": batch, "precision": precision, "xla": xla})
    set_precision(precision)
    identity, clip, perceptual = build_encoders(preset, config)
    trainer = build_trainer(config, identity, clip, perceptual_extractor=perceptual)
    trainer.make_train_function()
    iterator = iter(tf.data.Dataset.from_tensors(random_batch(config, batch)).repeat())

    def one() -> dict:
        trainer.reset_metrics()
        return {k: float(v) for k, v in trainer.train_function(iterator).items()}

    return {**timed(one, steps, batch, precision + ("+xla" if xla else "")), "backend": "tf"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["paper", "demo_warp", "tiny"], default="paper")
    parser.add_argument("--batch", type=int, default=None, help="default: 2 (paper), 8 (demo_warp, tiny)")
    parser.add_argument("--backends", nargs="+", default=["tf"], choices=BACKENDS,
                        help="the TensorFlow step, the JAX step, or both in one run")
    parser.add_argument("--xla", action="store_true", help="also time each precision with XLA (jit_compile)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the first (tracing) one")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    batch = args.batch or (2 if args.preset == "paper" else 8)
    if args.one:
        backend, _, variant = args.one.partition(":")
        precision, _, xla = variant.partition("+")
        row = measure_jax(args.preset, precision, batch, args.steps) if backend == "jax" else \
            measure(args.preset, precision, bool(xla), batch, args.steps)
        print("RESULT " + json.dumps(row))
        return
    rows = []
    variants = [f"tf:{p}" for p in args.precisions] * ("tf" in args.backends)
    variants += [f"tf:{p}+xla" for p in args.precisions] * ("tf" in args.backends and args.xla)
    variants += [f"jax:{p}" for p in args.precisions if p != "fp16"] * ("jax" in args.backends)
    for variant in variants:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": variant.partition(":")[0]
               .replace("tf", "tensorflow")}
        runner = [sys.executable]
        if variant.startswith("jax:"):
            # A child that cannot import TensorFlow (tests/backend_probe.py's finder), as on the GPU machine.
            runner += ["-c", "import sys, runpy; sys.path.insert(0, sys.argv[1]); import backend_probe; "
                             "backend_probe.block_tensorflow(); sys.argv = sys.argv[2:]; "
                             "runpy.run_path(sys.argv[0], run_name='__main__')",
                       str(Path(__file__).resolve().parents[1] / "tests")]
        out = subprocess.run(runner + [__file__, "--one", variant, "--preset", args.preset, "--batch",
                                       str(batch), "--steps", str(args.steps)], capture_output=True, text=True,
                             env=env)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            # Recorded, not fatal: the other variants still get measured (e.g. bf16 under XLA may not compile).
            reason = next((x.strip() for x in reversed(out.stderr.splitlines()) if x.strip()), "no output")
            rows.append({"backend": variant.partition(":")[0], "precision": variant.partition(":")[2], "batch": batch,
                         "failed": reason[-300:]})
            continue
        rows.append(json.loads(line[len("RESULT "):]))
    print(f"{'backend':<9}{'precision':<12}{'batch':>6}{'first step s':>14}{'s/step':>10}{'images/s':>10}"
          f"{'cores busy':>12}")
    for row in rows:
        if "failed" in row:
            print(f"{row['backend']:<9}{row['precision']:<12}{row['batch']:>6}  failed: {row['failed'][:90]}")
            continue
        print(f"{row['backend']:<9}{row['precision']:<12}{row['batch']:>6}{row['first_step_s']:>14.1f}"
              f"{row['seconds_per_step']:>10.2f}{row['images_per_s']:>10.3f}{row['cores_busy']:>12.2f}")
    name = "train_step" + ("" if args.preset == "paper" else f"_{args.preset}")
    name += "" if args.backends == ["tf"] else "_backends"
    results = RESULTS.with_name(f"{name}.json")
    results.parent.mkdir(parents=True, exist_ok=True)
    described = {"paper": "paper (256 px, ArcFace-R50 + CLIP ViT-B/32 random weights, VGG16 random)",
                 "demo_warp": "demo_warp (128 px, base 16, embedded SFace, teacher term, id augmentation)",
                 "tiny": "tiny (64 px, base 8, embedded SFace, id/rec/perceptual/att/adv + R1)"}
    results.write_text(json.dumps({
        "preset": described[args.preset],
        "command": "python benchmarks/" + " ".join([Path(__file__).name, *sys.argv[1:]]),
        "machine": {"cpu_count": os.cpu_count(), "cpu_model": cpu_model(), "platform": platform.platform()},
        "note": "random-weight CLIP ViT-B/32, ArcFace-R50 and VGG16; the machine was shared with other jobs",
        "rows": rows}, indent=2) + "\n")
    print(f"wrote {results}")


if __name__ == "__main__":
    main()
