"""Shared test fixtures: the ../shared/data location, quiet TensorFlow, a restored dtype policy, fixture writers, and
tiny trainers built by the real assembly (run.build_trainer) with synthetic batches."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
TESTS = REPO_ROOT / "tests"
FIXTURES = TESTS / "fixtures"
GOLDEN = TESTS / "golden"


def skip_or_fail(reason: str) -> None:
    """Skip locally; under CI (CI set, as .ci/run's environment has it) a missing prerequisite is a failure, so a
    dropped dependency or absent data cannot turn the suite green by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must have it)")
    pytest.skip(reason)


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; skips the test with a reason when it is absent (fails under CI)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        skip_or_fail(f"{path} is absent: the shared face data lives beside the checkout as ../shared/data")
    return path


#: Five LFW people with three or more photos: the small real data set of the pairs and geometry tests.
LFW_PEOPLE = ("Abdullah_Gul", "Adrien_Brody", "Alejandro_Toledo", "Alvaro_Uribe", "Amelie_Mauresmo")


def align_lfw_subset(root: Path, size: int) -> Path:
    """Copy three photos of each of LFW_PEOPLE into root/in and align them (clipswap align) at `size` into
    root/aligned; returns root/aligned. Skips (fails under CI) without ../shared/data."""
    import shutil

    from clipswap.facedata.align_dataset import align_dataset

    lfw = shared_data("lfw")
    for person in LFW_PEOPLE:
        (root / "in" / person).mkdir(parents=True)
        for photo in sorted((lfw / person).glob("*.jpg"))[:3]:
            shutil.copy(photo, root / "in" / person / photo.name)
    align_dataset(root / "in", root / "aligned", size=size, progress=False, seed=1)
    return root / "aligned"


def lfw_pairs_folder(root: Path) -> Path:
    """A `clipswap pairs` folder (root/pairs) of align_lfw_subset's faces at 128 px, two people held out: the
    landmark-labelled faces the geometry and occluder trainings read. Skips without dlib (the labels are its 68
    points) or ../shared/data."""
    require_module("dlib", "the pairs folder's labels are dlib's 68 landmarks")
    from clipswap.facedata.pairs import build_pairs

    build_pairs(align_lfw_subset(root, 128), root / "pairs", count=8, heldout=2, seed=5, progress=False)
    return root / "pairs"


def load_inference_script(module_name: str):
    """The checkout's inference.py (the release's script, not a package module) loaded as `module_name`."""
    spec = importlib.util.spec_from_file_location(module_name, REPO_ROOT / "inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_module(name: str, why: str) -> None:
    """Skip (fail under CI) when an optional package is not installed."""
    if importlib.util.find_spec(name) is None:
        skip_or_fail(f"{name} is not installed ({why}); pip install -e '.[test,eval]'")


def example_faces() -> tuple[Path, Path]:
    """inference.sh's default SOURCE and TARGET (scikit-image's astronaut, matplotlib's Grace Hopper)."""
    import matplotlib
    import skimage

    source = Path(skimage.data.data_dir) / "astronaut.png"
    target = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return source, target


def sface_cosines_to_source(source, target, swapped) -> tuple[float, float]:
    """(SFace cosine of the swap's face to the source's, of the target's own face to the source's), judged as
    `clipswap evaluate` does: OpenCV's SFace on the largest YuNet face of each [H, W, 3] uint8 RGB image. A swap
    carries the source's identity when the first is the larger."""
    from clipswap.evaluation.identity_models import SFaceModel
    from clipswap.face.detection import sort_by_area
    from clipswap.face.similarity import cosine_similarity
    from clipswap.face.yunet import YuNetDetector

    model, detector = SFaceModel(), YuNetDetector()

    def embed(image):
        faces = sort_by_area(detector.detect(image))
        assert faces, "no face found in an image judged"
        return model.embed(image, faces[0])

    source, target, swapped = (embed(image) for image in (source, target, swapped))
    return float(cosine_similarity(swapped, source)), float(cosine_similarity(target, source))


@pytest.fixture(autouse=True, scope="session")
def user_cache_folder(tmp_path_factory):
    """A temporary $XDG_CACHE_HOME for the whole run, so the generators the runtimes convert (cached in the user's
    cache folder, clipswap.inference.runtime.cache_dir) never land in the real ~/.cache; subprocesses inherit it."""
    folder = tmp_path_factory.mktemp("user-cache")
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture
def restore_policy():
    """Restore Keras' global dtype policy after a mixed-precision test."""
    import keras

    before = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(before)


def run_keras2_fixture(script: str, *args: str, timeout: int = 600) -> None:
    """Run a tests/fixtures/keras2_*.py writer under tf-keras (Keras 2) in a subprocess."""
    require_module("tf_keras", "tf-keras, the test extra, writes the published-format fixtures")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, str(FIXTURES / script), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{result.stderr[-3000:]}")


def runtime_suffix(precision: str = "fp32") -> str:
    """The end of the models line of a generator swap run with the default --runtime auto ("" for none)."""
    from clipswap.inference.runtime import resolve_runtime

    return f", runtime: {resolve_runtime('auto', precision)} {precision}"


# --- tiny trainers: built by clipswap.training.run.build_trainer, the assembly `clipswap train` uses ---------------

#: Side of the tiny trainers' images and their batch.
TRAINER_SIZE = 32
TRAINER_BATCH = 2


def tiny_identity_encoder(encoder: str = "arcface"):
    """A small stand-in for the frozen identity encoder: [B, 112, 112, 3] in [0, 1] -> [B, width of `encoder`].

    One strided conv a stage, named like the real encoder's stages (its NetworkSpec's), and for "arcface" a 1x1 conv
    beside its stage for each other layer FaceDancer's IFSR reads (conv3_block1_out at conv3_block4_out's
    resolution, ...), so the perceptual, attribute and IFSR terms tap it as they tap ArcFace-R50 or SFace. The
    embedding reads every one of them (pooled), so it differs from face to face.
    """
    import keras

    from clipswap.config import IDENTITY_ENCODERS
    from clipswap.losses.facedancer import IFSR_LAYERS
    from clipswap.training.assembly import IDENTITY_SPECS

    def stage_number(name: str) -> int:  # ResNet's conv2_block3_out -> 2, SFace's sface_conv_4_relu -> 4
        return int(re.findall(r"\d+", name)[0])

    stages = IDENTITY_SPECS[encoder].stages
    beside = [name for name in (IFSR_LAYERS if encoder == "arcface" else ()) if name not in stages]
    image = keras.Input((112, 112, 3))
    x, pooled = image, []
    for index, stage in enumerate(stages):
        x = keras.layers.Conv2D(8, 3, strides=4 if index == 0 else 2, padding="same", activation="relu", name=stage)(x)
        pooled.append(keras.layers.GlobalAveragePooling2D()(x))
        for name in beside:
            if stage_number(name) == stage_number(stage):
                side = keras.layers.Conv2D(8, 1, activation="relu", name=name)(x)
                pooled.append(keras.layers.GlobalAveragePooling2D()(side))
    embedding = keras.layers.Dense(IDENTITY_ENCODERS[encoder], name="tiny_id_embedding")(
        keras.layers.Concatenate()(pooled))
    return keras.Model(image, embedding, name="tiny_id")


def tiny_train_config(weights=None, *, clip: bool = True, seed: int = 0, model: dict | None = None, **changes):
    """The `tiny` preset shrunk for tests: 32 px, base width 4, mapping 8 x 1, the ArcFace-named stand-in encoder,
    the tiny CLIP tower and the paper's contra 0.3 when `clip`, lr 1e-3, batch 2; `weights` (LossWeights), `model`
    (ModelConfig changes) and any key in `changes` (a section's key alone, as `TrainConfig.replace` takes it:
    `precision="fp16"`, `id_augment=True`) override it."""
    import dataclasses

    from clipswap.config import get_preset

    preset = get_preset("tiny").config
    model_config = preset.model.replace(**{
        "image_size": TRAINER_SIZE, "base_filters": 4, "mapping_depth": 1, "mapping_width": 8,
        "identity_encoder": "arcface", "clip_variant": "tiny" if clip else None, **(model or {})})
    if weights is None:
        weights = dataclasses.replace(preset.weights, contra=0.3 if clip else 0.0)
    fields = {"model": model_config, "weights": weights, "batch_size": TRAINER_BATCH, "lr_g": 1e-3, "lr_d": 1e-3,
              "seed": seed, **changes}
    return preset.replace(**fields)


def build_tiny_trainer(weights=None, *, clip: bool = True, eager: bool = True, seed: int = 0, model: dict | None = None,
                       **changes):
    """A compiled SwapTrainer of tiny_train_config(...) built by run.build_trainer around the stand-in identity
    encoder (and the tiny CLIP tower), its step function made. Eager by default: tracing the double-backprop step
    costs far more than a few tiny eager steps. The frozen encoders come from `seed` too, so two calls with the same
    arguments build the same trainer."""
    import keras

    from clipswap.models.clip_encoder import build_clip_image_encoder
    from clipswap.training.run import build_trainer

    config = tiny_train_config(weights, clip=clip, seed=seed, model=model, **changes)
    keras.utils.set_random_seed(seed)
    identity = tiny_identity_encoder(config.model.identity_encoder)
    clip_model = build_clip_image_encoder("tiny", input_size=TRAINER_SIZE) if clip else None
    trainer = build_trainer(config, identity, clip_model)
    trainer.run_eagerly = eager
    trainer.make_train_function()
    return trainer


@pytest.fixture
def make_trainer():
    """Factory fixture: make_trainer(weights=None, clip=True, eager=True, seed=0, model=None, **TrainConfig changes)
    -> a tiny compiled SwapTrainer (build_tiny_trainer)."""
    return build_tiny_trainer


def synthetic_batches(seed: int = 0, n: int = 16, nan_from: int | None = None, shuffle: bool = True,
                      extras: tuple[str, ...] = ()):
    """The data pipeline's batch structure over random images: {"target", "source" [B, S, S, 3] in [-1, 1], "same"
    [B] (every third sample a same-identity pair, its source its target), "target_label", "source_label"} and any
    `extras` ("teacher", "warped", "mate") as more random images ("mate" brings "has_mate" [B]: every other sample
    has one); batches of TRAINER_BATCH, repeated. Batches from `nan_from` on are NaN (unshuffled then)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    shape = (n, TRAINER_SIZE, TRAINER_SIZE, 3)
    images = rng.uniform(-1, 1, shape).astype("float32")
    if nan_from is not None:
        images[nan_from * TRAINER_BATCH:] = np.nan
    sources = rng.uniform(-1, 1, shape).astype("float32")
    same = np.zeros(n, "float32")
    same[::3] = 1.0
    sources[same == 1] = images[same == 1]
    data = {"target": images, "source": sources, "same": same,
            "target_label": np.arange(n, dtype="int64"), "source_label": np.arange(n, dtype="int64")}
    for key in extras:
        data[key] = rng.uniform(-1, 1, shape).astype("float32")
    if "mate" in extras:
        data["has_mate"] = (np.arange(n) % 2 == 0).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices(data)
    if shuffle and nan_from is None:
        dataset = dataset.shuffle(8, seed=seed)
    return dataset.batch(TRAINER_BATCH, drop_remainder=True).repeat()


def run_steps(trainer, iterator, steps: int) -> list[dict[str, float]]:
    """`steps` training steps as run.py takes them (metrics reset, one train_function call each); their logs."""
    import numpy as np

    logs = []
    for _ in range(steps):
        trainer.reset_metrics()
        outputs = trainer.train_function(iterator)
        logs.append({name: float(np.asarray(value).reshape(-1)[0]) for name, value in outputs.items()})
    return logs
