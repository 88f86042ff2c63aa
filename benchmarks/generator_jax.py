"""The generator under Keras' JAX backend, with TensorFlow made unimportable: the shipped demo generator on the
default JAX device against the CPU (parity), and the release-size generator's time a face in float32 and bfloat16 at
batch 1 and 8.

    python benchmarks/generator_jax.py [--repeats 20] [--json benchmarks/results/generator_jax.json]

It exists for the GPU machines that have JAX but no TensorFlow (our models run there through Keras 3, and this measures
them there); on a CPU it runs too, slowly. Prints a table and writes JSON. The backend is set here
(KERAS_BACKEND=jax) before Keras is imported; TensorFlow is blocked so that any import of it fails loudly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"
sys.modules["tensorflow"] = None  # an import of TensorFlow anywhere below raises ImportError

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from clipswap.checkpoints.native import load_generator  # noqa: E402
from clipswap.checkpoints.pretrained import DEMO_DIR, DEMO_FILE  # noqa: E402
from clipswap.config import get_preset  # noqa: E402
from clipswap.models.compile import compile_predict, sample_inputs  # noqa: E402
from clipswap.models.generator import Generator  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
#: Batches timed, and the dtype policies (bf16: mixed_bfloat16, the float32 variables computed in bfloat16).
BATCHES = (1, 8)
POLICIES = (("fp32", "float32"), ("bf16", "mixed_bfloat16"))


def inputs_for(model: keras.Model, batch: int, seed: int = 0) -> list[np.ndarray]:
    """compile.sample_inputs with the identity vectors scaled to unit length (as the encoders' vectors are)."""
    return [array if array.ndim == 4 else array / np.linalg.norm(array, axis=1, keepdims=True)
            for array in sample_inputs(model, batch, seed)]


def run_on(device, predict, arrays) -> np.ndarray:
    with jax.default_device(device):
        placed = [jax.device_put(array, device) for array in arrays]
        return np.asarray(jax.block_until_ready(predict(*placed)), dtype=np.float32)


def demo_parity() -> dict:
    """The shipped demo generator on the default device and on the CPU, same inputs: the largest difference."""
    checkpoint = load_generator(DEMO_DIR / DEMO_FILE)
    predict = compile_predict(checkpoint.model)
    arrays = inputs_for(checkpoint.model, 4)
    device = jax.devices()[0]
    here = run_on(device, predict, arrays)
    cpu = run_on(jax.devices("cpu")[0], predict, arrays)
    return {"device": str(device), "max_abs_difference_vs_cpu": float(np.abs(here - cpu).max()),
            "output_std": float(cpu.std()), "finite": bool(np.isfinite(here).all())}


def time_generator(policy: str, batch: int, repeats: int) -> float:
    """Median seconds a face of the release-size generator (random weights) under `policy`."""
    model = Generator(get_preset("release").model, dtype=policy)
    arrays = inputs_for(model, batch)
    model(arrays, training=False)  # builds the variables
    predict = compile_predict(model)
    placed = [jax.device_put(array) for array in arrays]
    for _ in range(3):  # compile and warm up
        jax.block_until_ready(predict(*placed))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(predict(*placed))
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "generator_jax.json")
    args = parser.parse_args(argv)

    parity = demo_parity()
    print(f"JAX {jax.__version__}, Keras {keras.__version__}, device {parity['device']}; TensorFlow not importable")
    print(f"demo generator, {parity['device']} vs CPU: largest difference {parity['max_abs_difference_vs_cpu']:.2e} "
          f"(output spread {parity['output_std']:.3f}), finite: {parity['finite']}")
    rows = []
    print("\n| precision | batch | ms a face (release-size generator, 256 px) |\n|---|---|---|")
    for name, policy in POLICIES:
        for batch in BATCHES:
            seconds = time_generator(policy, batch, args.repeats)
            rows.append({"precision": name, "batch": batch, "ms_per_face": 1000.0 * seconds})
            print(f"| {name} | {batch} | {1000.0 * seconds:.2f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"jax": jax.__version__, "keras": keras.__version__, "parity": parity,
                                     "generator": rows, "repeats": args.repeats}, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
