"""The training loop: build everything from a TrainConfig, train with checkpoints and logs, export the generator.

Run folder layout:
    config.json           the resolved (effective) TrainConfig; a resumed run must match its model and losses
    checkpoints/          tf.train checkpoints (ckpt-<step>.*), the last `keep_checkpoints` kept
    logs/                 TensorBoard event files (scalars, image grids, held-out identity loss)
    metrics.jsonl         the logged scalar means, one JSON object per `log_every` steps
    heldout.jsonl         the held-out identity loss every `eval_every` steps (and at the start)
    images/               target | source | swap grids of a fixed held-out batch
    generator.keras/.json the trained generator in our format (clipswap swap --model uses it)
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from clipswap.atomic import ensure_writable_dir, write_text_atomic
from clipswap.config import IDENTITY_ENCODERS, LossWeights
from clipswap.errors import ClipswapError
from clipswap.jsonfile import JSONFileError, read_json_object
from clipswap.models.arcface import ARCFACE_SPEC
from clipswap.models.sface import SFACE_SPEC
from clipswap.training.callbacks import (
    Callback,
    HeldoutIdentity,
    ImageGridWriter,
    NonFiniteGuard,
    ProgressBar,
    ScalarLogger,
)
from clipswap.training.checkpointing import TrainingCheckpoints
from clipswap.training.config import TrainConfig
from clipswap.training.trainer import (
    ATTRIBUTE_STAGE_COUNT,
    FeatureSource,
    IdentityNetwork,
    SwapTrainer,
    current_learning_rate,
    make_optimizer,
)

logger = logging.getLogger(__name__)

#: The identity encoders' specs (input, stages the perceptual and attribute terms read), by ModelConfig name.
IDENTITY_SPECS = {"arcface": ARCFACE_SPEC, "sface": SFACE_SPEC}

POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
#: Image grids show the first rows of the held-out batch (the whole batch scores the held-out identity loss).
GRID_ROWS = 8


def _damaged_shard_message(folder, error) -> str:
    """The sentence for tf.data's DataLossError on a shard cut short or damaged on disk."""
    detail = error.message.splitlines()[0] if error.message else type(error).__name__
    # drop TensorFlow's "{{function_node ...}}" prefix, its "[Op:...] name:" suffix and stray quotes
    detail = re.sub(r"\s*\[Op:[^\]]*\].*$", "", detail.split("}}")[-1]).replace("'", "").strip()
    return (f"a training shard in {folder} is truncated or corrupt ({detail}); re-run `clipswap align` or "
            "`clipswap pairs` into a fresh folder, then --resume")


class TrainingSetupError(ClipswapError, ValueError):
    """The configuration, data or run folder cannot make a run (the message says what to change)."""


# --- configuration that depends on what is available -------------------------------------------------------------


def effective_config(config: TrainConfig) -> tuple[TrainConfig, list[str]]:
    """Adjust the configuration to the encoders actually given; returns (config, warnings).

    ArcFace-R50 is used only with `arcface_path`; otherwise SFace (offline) encodes identity, and the IFSR term
    (ArcFace layers) is switched off. CLIP is used only with `clip_preset`; otherwise G gets no CLIP input and the
    contrastive term is off.
    """
    notes: list[str] = []
    model, weights = config.model, config.weights
    if config.arcface_path:
        if model.identity_encoder != "arcface":
            model = model.replace(identity_encoder="arcface")
            notes.append("--arcface given: identity encoder set to ArcFace-R50 (512-d)")
    elif model.identity_encoder != "sface":
        model = model.replace(identity_encoder="sface")
        notes.append("no --arcface file: identity encoder is SFace (128-d, offline) instead of ArcFace-R50")
    if config.clip_preset:
        if model.clip_variant is None:
            notes.append("--clip-preset given: the CLIP embedding is appended to the identity input (paper z_id)")
            model = model.replace(clip_variant="clip_vit_base_patch32")
    else:
        if model.clip_variant is not None:
            model = model.replace(clip_variant=None)
            notes.append("no --clip-preset: the generator gets no CLIP identity input")
        if weights.contra:
            weights = LossWeights(**{**weights.as_dict(), "contra": 0.0})
            notes.append("no --clip-preset: the CLIP contrastive loss (lambda_contra) is OFF")
    if model.identity_encoder != "arcface" and weights.ifsr:
        weights = LossWeights(**{**weights.as_dict(), "ifsr": 0.0})
        notes.append("IFSR needs ArcFace-R50 layers: the IFSR term is OFF (give --arcface to use it)")
    return config.replace(model=model, weights=weights), notes


# --- strategy and precision --------------------------------------------------------------------------------------


def split_cpu(replicas: int) -> None:
    """Split the CPU into `replicas` logical devices (testing distribution without GPUs); call before TF starts."""
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * replicas)


def make_strategy(cpu_replicas: int = 0) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG is set, MirroredStrategy over all GPUs when several are visible,
    MirroredStrategy over the logical CPUs when `cpu_replicas` > 1 (see split_cpu), else the default strategy."""
    if os.environ.get("TF_CONFIG"):
        logger.info("TF_CONFIG set: MultiWorkerMirroredStrategy")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        logger.info("%d GPUs: MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    if cpu_replicas > 1:
        cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
        if len(cpus) < cpu_replicas:
            raise TrainingSetupError(
                f"{cpu_replicas} CPU replicas asked but {len(cpus)} logical CPUs exist (split_cpu must run first)"
            )
        return tf.distribute.MirroredStrategy(cpus[:cpu_replicas])
    return tf.distribute.get_strategy()


def set_precision(precision: str) -> None:
    keras.config.set_dtype_policy(POLICIES[precision])


# --- building ---------------------------------------------------------------------------------------------------


def load_identity_encoder(config: TrainConfig) -> keras.Model:
    """The frozen identity encoder R of the configuration (the swap pipeline's loader: same files, same errors)."""
    from clipswap.checkpoints.encoders import load_identity_encoder as load_named
    from clipswap.checkpoints.errors import CheckpointError

    try:
        return load_named(config.model.identity_encoder, config.arcface_path).model
    except CheckpointError as error:
        raise TrainingSetupError(f"identity encoder: {error}") from error


def load_clip(config: TrainConfig) -> keras.Model | None:
    """The frozen CLIP image tower at the generator's size, or None when the configuration has no CLIP."""
    if config.model.clip_variant is None:
        return None
    from clipswap.checkpoints.encoders import load_clip_embedder
    from clipswap.checkpoints.errors import CheckpointError

    try:
        return load_clip_embedder(config.model.clip_variant, config.clip_preset, config.model.image_size).model
    except CheckpointError as error:
        raise TrainingSetupError(f"CLIP: {error}") from error


def build_trainer(
    config: TrainConfig, identity_model: keras.Model, clip_model: keras.Model | None, perceptual_extractor=None
) -> SwapTrainer:
    """G, D and the loss networks around the given frozen encoders; call under the strategy scope (and after
    set_precision). `perceptual_extractor` overrides the VGG16 build (benchmarks pass a random one)."""
    from clipswap.models.discriminator import Discriminator
    from clipswap.models.generator import Generator

    keras.utils.set_random_seed(config.seed)
    model = config.model
    if identity_model.output.shape[-1] != IDENTITY_ENCODERS[model.identity_encoder]:
        raise TrainingSetupError(
            f"the identity encoder outputs {identity_model.output.shape[-1]} values but the configuration says "
            f"{model.identity_encoder} ({IDENTITY_ENCODERS[model.identity_encoder]})"
        )
    generator = Generator(model)
    discriminator = Discriminator(model.image_size, model.base_filters)
    stage_layers = IDENTITY_SPECS[model.identity_encoder].stages
    weights = config.weights
    ifsr_layers: tuple[str, ...] = ()
    if weights.ifsr:
        from clipswap.losses.facedancer import IFSR_LAYERS

        ifsr_layers = IFSR_LAYERS

    def source_for(kind: str, identity_layers: tuple[str, ...]) -> FeatureSource:
        from clipswap.losses.attribute import AttributeModelError, make_attribute_extractor
        from clipswap.losses.perceptual import (
            FACEDANCER_VGG_WEIGHTS,
            VGG16_NOTOP_FILE,
            WeightsDownloadError,
            vgg16_features,
        )

        if kind == "identity":
            return FeatureSource(identity_layers=identity_layers)
        if kind == "discriminator":
            names = [layer.name for layer in discriminator.layers if layer.name.endswith("_out")]
            return FeatureSource(extractor=make_attribute_extractor("discriminator", model=discriminator,
                                                                    layer_names=names))
        if kind == "file":
            try:
                return FeatureSource(extractor=make_attribute_extractor("file", path=config.attribute_file))
            except AttributeModelError as error:
                raise TrainingSetupError(f"{error} (set with --set attribute_file=PATH)") from error
        # vgg16 (perceptual only)
        try:
            extractor = perceptual_extractor or vgg16_features(config.vgg_weights, config.vgg_preprocessing)
        except (WeightsDownloadError, FileNotFoundError) as error:
            raise TrainingSetupError(
                f"the VGG16 perceptual network has no weights: {error}. Pass --set vgg_weights=PATH (Keras' VGG16 "
                f"no-top file {VGG16_NOTOP_FILE}) or use another network with --set perceptual_network=identity"
            ) from error
        layer_weights = FACEDANCER_VGG_WEIGHTS if config.facedancer_perceptual else None
        return FeatureSource(extractor=extractor, layer_weights=layer_weights)

    perceptual = source_for(config.perceptual_network, stage_layers) if weights.perceptual else None
    attribute = (
        source_for(config.attribute_network, stage_layers[:ATTRIBUTE_STAGE_COUNT]) if weights.att else None
    )
    tapped = set(ifsr_layers)
    for source in (perceptual, attribute):
        if source is not None:
            tapped.update(source.identity_layers)
    identity = IdentityNetwork(identity_model, sorted(tapped))
    trainer = SwapTrainer(
        generator, discriminator, identity, weights,
        clip_encoder=clip_model, perceptual=perceptual, attribute=attribute, ifsr_layers=ifsr_layers,
        n_aug=config.n_aug, aug_distortion=config.aug_distortion, aug_crop_fraction=config.aug_crop_fraction,
        facedancer_rec_clip=config.facedancer_rec_clip, id_augment=config.id_augment,
        teacher_face_only=config.teacher_face_only, teacher_background=config.teacher_background,
        id_warmup=(config.id_warmup_steps, config.id_warmup_weight),
        perceptual_to_teacher=config.perceptual_to_teacher,
        seed=config.seed,
    )
    fp16 = config.precision == "fp16"
    trainer.compile(
        make_optimizer(config.lr_g, config.beta1, config.beta2, config.lr_decay_rate, config.lr_decay_steps, fp16,
                       "g_adam"),
        make_optimizer(config.lr_d, config.beta1, config.beta2, config.lr_decay_rate, config.lr_decay_steps, fp16,
                       "d_adam"),
        jit_compile=config.xla,
    )
    return trainer


# --- data -------------------------------------------------------------------------------------------------------


def find_shards(data_dir: str | Path) -> list[Path]:
    """The shard files of `data_dir` (shards.list_shards), a TrainingSetupError when there are none."""
    from clipswap.facedata.shards import ShardError, list_shards

    try:
        return [Path(path) for path in list_shards(data_dir)]
    except ShardError as error:
        raise TrainingSetupError(str(error)) from error


def split_heldout(shards: list[Path]) -> tuple[list[Path], list[Path]]:
    """Hold the last shard out of training for the fixed evaluation batch when there are several."""
    if len(shards) > 1:
        return shards[:-1], shards[-1:]
    logger.warning("only one shard: the evaluation batch is drawn from the training data")
    return shards, shards


# --- the loop ---------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    run_dir: Path
    start_step: int
    final_step: int
    exported: Path | None
    heldout: list[tuple[int, float]] = field(default_factory=list)
    last_logs: dict[str, float] = field(default_factory=dict)


def _check_resume_config(run_dir: Path, config: TrainConfig) -> None:
    saved_path = run_dir / "config.json"
    if not saved_path.is_file():
        return
    try:
        saved = read_json_object(saved_path)
    except JSONFileError as error:
        raise TrainingSetupError(f"--resume: {error}; restore it or start a new --run-dir") from error
    current = config.to_dict()
    # What shapes the state must match; the schedule (steps, intervals) may change on resume.
    for key in ("model", "weights", "precision", "perceptual_network", "attribute_network", "batch_size"):
        if saved.get(key) != current.get(key):
            raise TrainingSetupError(
                f"--resume: {key} differs from the run's config.json ({saved.get(key)} vs {current.get(key)}); "
                "resume with the same configuration or start a new --run-dir"
            )


def run_training(
    config: TrainConfig,
    data_dir: str | Path,
    run_dir: str | Path,
    *,
    resume: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    progress: bool = True,
    dataset_fn=None,
    eval_batch=None,
) -> RunResult:
    """Train according to `config` on the shards in `data_dir`, writing the run folder (module docstring).

    Args:
        config: an effective configuration (see `effective_config`).
        resume: continue from the latest checkpoint in run_dir/checkpoints (required when it has any).
        strategy: distribution strategy (default `make_strategy()`).
        dataset_fn: `seed -> tf.data.Dataset` overriding the shard reader (tests use synthetic data).
        eval_batch: dict {"target", "source"} overriding the held-out batch.
    """
    run_dir = Path(run_dir)
    checkpoint_dir = run_dir / "checkpoints"
    has_checkpoints = checkpoint_dir.is_dir() and tf.train.latest_checkpoint(str(checkpoint_dir)) is not None
    if resume and not has_checkpoints:
        if not (run_dir / "config.json").is_file():
            # Before the folder is made: a failed --resume leaves no empty run folder behind (issue 11 item 7).
            raise TrainingSetupError(f"--resume: no checkpoint in {checkpoint_dir}")
        # A run stopped before its first checkpoint: resuming it is starting it again (its log rows are dropped).
        _check_resume_config(run_dir, config)
        logger.warning("--resume: %s has no checkpoint yet (the run stopped before its first one); starting from "
                       "step 0", run_dir)
        forget_after(run_dir, -1)
        resume = False
    created = not run_dir.exists()
    run_dir = ensure_writable_dir(run_dir)
    try:
        return _run_training_in(run_dir, config, data_dir, resume, has_checkpoints, strategy, progress, dataset_fn,
                                eval_batch)
    except TrainingSetupError:
        if created and not any(path.is_file() for path in run_dir.rglob("*")):
            shutil.rmtree(run_dir)  # a run that failed before writing anything leaves no empty folder (item 7)
        raise


def _run_training_in(run_dir: Path, config: TrainConfig, data_dir, resume: bool, has_checkpoints: bool, strategy,
                     progress: bool, dataset_fn, eval_batch) -> RunResult:
    """run_training once its folder exists (same arguments)."""
    if has_checkpoints and not resume:
        raise TrainingSetupError(f"{run_dir} already holds checkpoints: pass --resume or choose a new --run-dir")
    if resume:
        _check_resume_config(run_dir, config)
    if config.weights.att and config.attribute_network == "file":
        # Before the data and the models are loaded: a wrong path should not cost minutes first.
        from clipswap.losses.attribute import AttributeModelError, check_attribute_file

        try:
            check_attribute_file(config.attribute_file)
        except AttributeModelError as error:
            raise TrainingSetupError(f"{error} (set with --set attribute_file=PATH)") from error

    if config.xla and config.model.clip_variant is not None:
        # CLIP's preprocessing resizes bicubically; TensorFlow registers no XLA kernel for ResizeBicubic (measured:
        # "Detected unsupported operations ... XLA_CPU_JIT: ResizeBicubic"), so the compiled step cannot be built.
        raise TrainingSetupError(
            "--xla cannot compile a step with CLIP (its bicubic resize, ResizeBicubic, has no XLA kernel): "
            "drop --xla or --clip-preset"
        )
    set_precision(config.precision)
    strategy = strategy or make_strategy()
    if not is_chief(strategy):
        # A non-chief worker takes every step (and every save: they are collective) but must not write the run
        # folder the chief writes (the same path on a shared or local disk): its copy goes to a private folder
        # that is removed at the end. It resumes from the chief's checkpoints.
        worker_dir = Path(tempfile.mkdtemp(prefix=f"clipswap-worker{strategy.cluster_resolver.task_id}-"))
        try:
            return _run_loop(config, data_dir, run_dir, worker_dir, resume, strategy, progress, dataset_fn,
                             eval_batch)
        finally:
            shutil.rmtree(worker_dir, ignore_errors=True)
    return _run_loop(config, data_dir, run_dir, run_dir, resume, strategy, progress, dataset_fn, eval_batch)


#: The run's JSON-lines logs; each row has a "step".
RUN_LOGS = ("metrics.jsonl", "heldout.jsonl")


def forget_after(run_dir: Path, step: int) -> None:
    """Make a resumed run's folder say what the restored state did: drop the log rows a killed run wrote after the
    checkpoint it resumes from (they would appear twice), and remove the partial checkpoint folders a kill during a
    save leaves behind (`ckpt-N_temp*`; TensorFlow renames them into place only when a save completes)."""
    for name in RUN_LOGS:
        path = run_dir / name
        if not path.is_file():
            continue
        kept, dropped = [], 0
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row_step = json.loads(line).get("step", 0)
            except (json.JSONDecodeError, AttributeError):
                dropped += 1  # a line cut short by the kill
                continue
            if isinstance(row_step, int) and row_step > step:
                dropped += 1
            else:
                kept.append(line)
        if dropped:
            logger.info("%s: dropped %d rows written after step %d by the interrupted run", name, dropped, step)
            write_text_atomic(path, "".join(f"{line}\n" for line in kept))
    for partial in (run_dir / "checkpoints").glob("*_temp*"):
        logger.info("removing the partial checkpoint %s", partial)
        if partial.is_dir():
            shutil.rmtree(partial)
        else:
            partial.unlink()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """False only on a non-chief worker of a multi-worker strategy (TF_CONFIG's task other than worker 0/chief)."""
    return bool(strategy.extended.should_checkpoint)


def heldout_warps(batch: dict[str, np.ndarray], data_dir: str | Path) -> dict[str, np.ndarray]:
    """{"warped", "warped_control"}: each held-out target with its own source's face (and, for the wrong-source
    control, the next sample's source's face) warped onto it (warp_paste), [n, S, S, 3] float32 in [-1, 1]; a target
    without landmarks in the pairs folder's heldout_landmarks.json, or whose warp fails, keeps its own face there
    (counted in a warning)."""
    from clipswap.face.landmark_swap import LandmarkSwapError, warp_paste
    from clipswap.facedata.pairs import heldout_landmarks

    points = heldout_landmarks(data_dir)
    to_uint8 = lambda image: np.clip(np.round((image + 1.0) * 127.5), 0, 255).astype(np.uint8)  # noqa: E731
    n = len(batch["target"])
    paths = [[p.decode() if isinstance(p, bytes) else str(p) for p in batch.get(key, [""] * n)]
             for key in ("target_path", "source_path")]
    missing = 0

    def warp(i: int, j: int) -> np.ndarray:
        nonlocal missing
        target = to_uint8(batch["target"][i])
        source_68, target_68 = points.get(paths[1][j]), points.get(paths[0][i])
        if source_68 is None or target_68 is None:
            missing += 1
            return target
        try:
            return warp_paste(to_uint8(batch["source"][j]), source_68, target, target_68)[0]
        except LandmarkSwapError:
            missing += 1
            return target

    warps = {key: np.stack([warp(i, (i + shift) % n) for i in range(n)]).astype(np.float32) / 127.5 - 1.0
             for key, shift in (("warped", 0), ("warped_control", 1))}
    if missing:
        logger.warning("%d of the %d held-out warps had no landmarks; those targets keep their own face",
                       missing, 2 * n)
    return warps


def _run_loop(
    config: TrainConfig, data_dir: str | Path, run_dir: Path, out_dir: Path, resume: bool,
    strategy: tf.distribute.Strategy, progress: bool, dataset_fn, eval_batch,
) -> RunResult:
    """run_training after the checks: `run_dir` holds the checkpoints to resume from, `out_dir` gets the writing."""
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise TrainingSetupError(f"batch_size {config.batch_size} is not divisible by the {replicas} replicas")

    if dataset_fn is None or eval_batch is None:
        from clipswap.facedata.pairs import (
            PairsError,
            heldout_shards,
            is_pairs_folder,
            pair_shards,
            pairs_have_warps,
        )
        from clipswap.training.data import make_eval_batch, make_pair_dataset, make_train_dataset

        pairs = is_pairs_folder(data_dir)
        if config.weights.teacher and not pairs:
            raise TrainingSetupError(
                f"weights.teacher > 0 needs teacher images: {data_dir} is not a `clipswap pairs` folder "
                "(make one with `clipswap pairs --data ALIGNED --output PAIRS`, or --set weights.teacher=0)"
            )
        if config.model.pre_swap and not pairs:
            raise TrainingSetupError(
                f"a pre_swap={config.model.pre_swap!r} generator reads the landmark swap of each pair: {data_dir} is "
                "not a `clipswap pairs` folder (make one with `clipswap pairs --data ALIGNED --output PAIRS`)"
            )
        if config.model.source_warp and not (pairs and pairs_have_warps(data_dir)):
            raise TrainingSetupError(
                f"a source_warp generator reads the warped source of each pair: {data_dir} is not a `clipswap pairs` "
                "folder made by this version (run `clipswap pairs --data ALIGNED --output PAIRS` again)"
            )
        if pairs:
            try:
                train_shards, eval_shards = pair_shards(data_dir), heldout_shards(data_dir)
            except PairsError as error:
                raise TrainingSetupError(str(error)) from error
        else:
            train_shards, eval_shards = split_heldout(find_shards(data_dir))
        if dataset_fn is None:
            def dataset_fn(seed: int) -> tf.data.Dataset:
                if pairs:
                    return make_pair_dataset(
                        train_shards, config.batch_size, config.model.image_size,
                        same_identity_prob=config.same_identity_prob, jitter=config.jitter, seed=seed,
                        shuffle_buffer=config.shuffle_buffer, repeat=True, warped=config.model.source_warp,
                    )
                return make_train_dataset(
                    [str(s) for s in train_shards], config.batch_size, config.model.image_size,
                    same_identity_prob=config.same_identity_prob, jitter=config.jitter, seed=seed,
                    shuffle_buffer=config.shuffle_buffer, repeat=True,
                )
        if eval_batch is None:
            from clipswap.facedata.shards import ShardError

            try:
                eval_batch = make_eval_batch(
                    [str(s) for s in eval_shards], config.eval_batch_size, config.model.image_size, config.seed + 1
                )
            except ShardError as error:
                raise TrainingSetupError(f"{error}; make shards with faces with `clipswap align`") from error
            except tf.errors.DataLossError as error:
                raise TrainingSetupError(_damaged_shard_message(data_dir, error)) from None
    eval_batch = {key: np.asarray(value) for key, value in eval_batch.items()}
    if config.model.source_warp and "warped" not in eval_batch:
        eval_batch.update(heldout_warps(eval_batch, data_dir))

    with strategy.scope():
        identity_model = load_identity_encoder(config)
        clip_model = load_clip(config)
        trainer = build_trainer(config, identity_model, clip_model)
        trainer.make_train_function()

    write_text_atomic(out_dir / "config.json", config.to_json())
    start_seed = config.seed
    dataset = dataset_fn(start_seed)
    if replicas > 1:
        iterator = iter(strategy.experimental_distribute_dataset(dataset))
    else:
        iterator = iter(dataset)
    save_data = config.checkpoint_data
    if save_data and not isinstance(iterator, tf.__internal__.tracking.Trackable):
        # tf.distribute's DistributedIterator cannot be checkpointed: a distributed resume reseeds the data instead.
        logger.warning("the distributed data iterator cannot be checkpointed; a resumed run reseeds the data order")
        save_data = False
    checkpoints = TrainingCheckpoints(out_dir / "checkpoints", trainer, config.keep_checkpoints,
                                      iterator if save_data else None)
    start_step = 0
    if resume:
        start_step = checkpoints.restore(tf.train.latest_checkpoint(str(run_dir / "checkpoints")))
        if not save_data:
            # Without the saved iterator the stream restarts; reseed so the resumed run does not replay the start.
            dataset = dataset_fn(start_seed + start_step)
            iterator = iter(strategy.experimental_distribute_dataset(dataset) if replicas > 1 else dataset)
        logger.info("resuming at step %d of %d", start_step, config.steps)
        forget_after(out_dir, start_step)

    writer = tf.summary.create_file_writer(str(out_dir / "logs"))
    heldout = HeldoutIdentity(trainer, eval_batch, config.eval_every, writer, out_dir / "heldout.jsonl")
    grid_batch = {key: value[:GRID_ROWS] for key, value in eval_batch.items()}
    grids = ImageGridWriter(trainer, grid_batch, config.image_every, writer, out_dir / "images")
    callbacks: list[Callback] = [
        NonFiniteGuard(lambda: checkpoints.latest),
        ScalarLogger(writer, config.log_every, out_dir / "metrics.jsonl"),
        heldout,
        grids,
        ProgressBar(config.steps, start_step, disable=not progress),
    ]
    if start_step == 0:
        heldout.evaluate(0)
        grids.write(0)

    step = start_step
    logs: dict[str, float] = {}
    try:
        while step < config.steps:
            started = time.perf_counter()
            trainer.reset_metrics()
            try:
                outputs = trainer.train_function(iterator)
            except tf.errors.DataLossError as error:
                # A shard cut short or damaged on disk (the checkpoints written so far stay; --resume continues).
                raise TrainingSetupError(_damaged_shard_message(data_dir, error)) from None
            # Scalars, or [1] under a MultiWorkerMirroredStrategy outside multi-worker mode (see SwapTrainer).
            logs = {name: float(np.asarray(value).reshape(-1)[0]) for name, value in outputs.items()}
            elapsed = time.perf_counter() - started
            step = int(trainer.step_counter.numpy())
            logs.update(
                lr_g=current_learning_rate(trainer.g_optimizer),
                lr_d=current_learning_rate(trainer.d_optimizer),
                step_time=elapsed,
                images_per_s=config.batch_size / elapsed,
            )
            for callback in callbacks:
                callback.on_step_end(step, logs)
            if step % config.checkpoint_every == 0 or step == config.steps:
                checkpoints.save()
    finally:
        for callback in callbacks:
            callback.on_train_end()
        writer.flush()

    exported = None
    if step >= config.steps and out_dir == run_dir:
        from clipswap.checkpoints.native import save_generator

        exported = run_dir / "generator.keras"
        save_generator(trainer.generator, config.model, exported, step=step, trained_by="clipswap train",
                       preset=config.preset)
    return RunResult(run_dir, start_step, step, exported, heldout.history, logs)
