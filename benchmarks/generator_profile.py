"""Where the TensorFlow generator's time goes, by layer kind, in one run.

    python benchmarks/generator_profile.py [--repeats 10] [--json benchmarks/results/generator_profile.json]

The release-size generator (256 px, base width 64, SFace's 128-d identity input, random weights), batch 1, compiled
as `clipswap swap` runs it (compile_generator), fp32 and mixed bf16. Each row removes one kind of non-convolution
work and times the whole graph again; the drop is that kind's share:
- `InstanceNormalization`: every InstanceNormalization returns its input (fp32: all of them; bf16: those of the
  down blocks and the AFFA mask branches, the up blocks' are fused with their AdaIN);
- `AdaIN` (fp32 only): every AdaIN returns x (its two dense projections of w drop out too);
- `NormalisedAdaIN` (bf16 only): every up block's fused instance norm + AdaIN returns its input;
- `AFFA blend`: every AdaptiveAttention returns the decoder feature (its mask branch, a 3x3 and a 1x1 conv and an
  instance norm, is pruned by the graph optimiser with it);
- `bilinear upsampling`: UpSampling2D interpolates "nearest" instead;
- `LeakyReLU`: every LeakyReLU returns its input;
- `convolutions only`: all of the above at once, the convolution cost TensorFlow reaches on this graph;
- `batch 2, per face`: the full graph on two faces at once, time / 2 (whether batching the faces of consecutive
  video frames pays).
The floor is 2 x MACs / the matmul peak of the same precision (benchmarks/generator.py measures it the same way).
Every variant is built in the same process, so the ratios between rows hold even when absolute times drift.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from generator import gemm_peak, median_seconds  # noqa: E402 -- benchmarks/generator.py (run as a script)

from clipswap.atomic import write_text_atomic  # noqa: E402
from clipswap.config import ModelConfig  # noqa: E402
from clipswap.inference.swapper import compile_generator, generator_in_precision  # noqa: E402
from clipswap.layers import AdaIN, AdaptiveAttention, InstanceNormalization, NormalisedAdaIN  # noqa: E402
from clipswap.models.cost import count_macs  # noqa: E402
from clipswap.models.generator import Generator  # noqa: E402


def _passthrough_first(self, inputs, *args, **kwargs):
    return inputs[0] if isinstance(inputs, (list, tuple)) else inputs


def _affa_decoder(self, inputs, *args, **kwargs):
    return inputs[2]


#: variant -> [(class, attribute, replacement)]
PATCHES = {
    "InstanceNormalization": [(InstanceNormalization, "call", _passthrough_first)],
    "AdaIN": [(AdaIN, "call", _passthrough_first)],
    "NormalisedAdaIN": [(NormalisedAdaIN, "call", _passthrough_first)],
    "AFFA blend": [(AdaptiveAttention, "call", _affa_decoder)],
    "LeakyReLU": [(keras.layers.LeakyReLU, "call", _passthrough_first)],
}


@contextlib.contextmanager
def removed(kinds: tuple[str, ...]) -> Iterator[None]:
    """The layer kinds in `kinds` do nothing while the block runs (their `call` patched), and bilinear upsampling
    becomes nearest when "bilinear upsampling" is among them."""
    saved = []
    for kind in kinds:
        for cls, attribute, replacement in PATCHES.get(kind, []):
            saved.append((cls, attribute, cls.__dict__[attribute]))
            setattr(cls, attribute, replacement)
    original_init = keras.layers.UpSampling2D.__init__
    if "bilinear upsampling" in kinds:
        def nearest_init(self, *args, **kwargs):
            kwargs["interpolation"] = "nearest"
            original_init(self, *args, **kwargs)
        keras.layers.UpSampling2D.__init__ = nearest_init
    try:
        yield
    finally:
        keras.layers.UpSampling2D.__init__ = original_init
        for cls, attribute, original in reversed(saved):
            setattr(cls, attribute, original)


VARIANTS: dict[str, tuple[str, ...]] = {
    "full graph": (),
    "InstanceNormalization": ("InstanceNormalization",),
    "AdaIN": ("AdaIN",),
    "NormalisedAdaIN": ("NormalisedAdaIN",),
    "AFFA blend": ("AFFA blend",),
    "bilinear upsampling": ("bilinear upsampling",),
    "LeakyReLU": ("LeakyReLU",),
    "convolutions only": ("InstanceNormalization", "AdaIN", "NormalisedAdaIN", "AFFA blend", "bilinear upsampling",
                          "LeakyReLU"),
}
#: The full graph at batch 2, reported per face.
BATCH_ROW = "batch 2, per face"


def time_variant(config: ModelConfig, weights: list, kinds: tuple[str, ...], precision: str, x, z,
                 repeats: int) -> float:
    """Median seconds a face of the generator with `kinds` removed, on the batch x, z."""
    with removed(kinds):
        model = Generator(config)
        model.set_weights(weights)
        compiled = compile_generator(generator_in_precision(model, precision), config.image_size, config.id_input_dim)
        x_t, z_t = tf.constant(x), tf.constant(z)
        return median_seconds(lambda: compiled(x_t, z_t).numpy(), repeats) / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/generator_profile.json"))
    args = parser.parse_args()

    config = ModelConfig(identity_encoder="sface")
    keras.utils.set_random_seed(0)
    reference = Generator(config)
    weights = reference.get_weights()
    conv_macs, dense_macs = count_macs(reference, [(256, 256, 3), (config.id_input_dim,)])
    gflop = 2 * (conv_macs + dense_macs) / 1e9
    peaks = {"fp32": gemm_peak(tf.float32, repeats=args.repeats), "bf16": gemm_peak(tf.bfloat16, repeats=args.repeats)}
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 256, 256, 3)).astype(np.float32)
    z = rng.normal(size=(1, config.id_input_dim)).astype(np.float32)

    results = {}
    for precision in ("fp32", "bf16"):
        floor = gflop / peaks[precision]
        rows = {name: time_variant(config, weights, kinds, precision, x, z, args.repeats)
                for name, kinds in VARIANTS.items()}
        rows[BATCH_ROW] = time_variant(config, weights, (), precision, np.concatenate([x, x[::-1, ::-1]]),
                                       np.concatenate([z, -z]), args.repeats)
        results[precision] = {"floor_s": floor, "seconds": rows}
    print(f"GEMM peak fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f} GFLOP/s; generator {gflop:.2f} GFLOP a face")
    header = f"{'removed':<22}" + "".join(f"{p + ' ms':>11}{'share':>8}{'x floor':>9}" for p in results)
    print(header)
    print("-" * len(header))
    for name in [*VARIANTS, BATCH_ROW]:
        line = f"{name:<22}"
        for result in results.values():
            full, seconds = result["seconds"]["full graph"], result["seconds"][name]
            share = "" if name in ("full graph", BATCH_ROW) else f"{(full - seconds) / full * 100:7.0f}%"
            line += f"{seconds * 1e3:>11.1f}{share:>8}{seconds / result['floor_s']:>9.2f}"
        print(line)
    payload = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "gemm_gflops": peaks,
               "generator_gflop": gflop, "results": results, "repeats": args.repeats,
               "variants": {name: list(kinds) for name, kinds in VARIANTS.items()}}
    write_text_atomic(args.json, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
