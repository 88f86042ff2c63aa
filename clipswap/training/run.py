"""The training loop: build everything from a TrainConfig and its RunFiles (clipswap.config), train with
checkpoints and logs, export the generator.

Run folder layout:
    config.json           the resolved TrainConfig tree (no file paths); a resumed run must match its model and losses
    checkpoints/          state-<step>.npz (clipswap.training.state_files; both backends read them) with the tf.data
                          position beside each (state-<step>.tfdata.*), the last `keep_checkpoints` kept
    logs/                 TensorBoard event files (scalars, image grids, held-out identity loss)
    metrics.jsonl         the logged scalar means, one JSON object per `log_every` steps
    heldout.jsonl         the held-out identity loss every `eval_every` steps (and at the start)
    images/               target | source | swap grids of a fixed held-out batch
    generator.keras/.json the trained generator in our format (clipswap swap --model uses it)
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from clipswap.atomic import ensure_writable_dir, write_text_atomic
from clipswap.config import ConfigError, RunFiles, TrainConfig, check_runnable
from clipswap.facedata.pairs import PairsError
from clipswap.facedata.shards import ShardError
from clipswap.registry import load_object
from clipswap.registry.attributes import ATTRIBUTES
from clipswap.training.assembly import (  # noqa: F401 (the assembly lived here; its names still import from here)
    IDENTITY_SPECS,
    POLICIES,
    TrainingSetupError,
    build_loss,
    build_networks,
    check_identity_width,
    check_shape_directions,
    feature_source,
    init_generator_from,
    load_clip,
    load_identity_encoder,
    make_optimizers,
    set_precision,
    vgg16_feature_source,
)
from clipswap.training.callbacks import (
    CheckpointSaver,
    HeldoutIdentity,
    ImageGridWriter,
    NonFiniteGuard,
    ProgressBar,
    ScalarLogger,
)
from clipswap.training.checkpointing import TrainingCheckpoints
from clipswap.training.run_folder import (  # noqa: F401 (these lived here; their names still import from here)
    GRID_ROWS,
    RESUME_MUST_MATCH,
    RUN_LOGS,
    RunResult,
    check_resume_config,
    forget_after,
)
from clipswap.training.state_files import newest_checkpoint
from clipswap.training.trainer import SwapTrainer, current_learning_rate

logger = logging.getLogger(__name__)


def _damaged_shard_message(folder, error) -> str:
    """The sentence for tf.data's DataLossError on a shard cut short or damaged on disk."""
    detail = error.message.splitlines()[0] if error.message else type(error).__name__
    # drop TensorFlow's "{{function_node ...}}" prefix, its "[Op:...] name:" suffix and stray quotes
    detail = re.sub(r"\s*\[Op:[^\]]*\].*$", "", detail.split("}}")[-1]).replace("'", "").strip()
    return (f"a training shard in {folder} is truncated or corrupt ({detail}); re-run `clipswap align` or "
            "`clipswap pairs` into a fresh folder, then --resume")


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


# --- building (the backend-neutral parts: clipswap.training.assembly) ---------------------------------------------


def build_trainer(
    config: TrainConfig, identity_model: keras.Model, clip_model: keras.Model | None, perceptual_extractor=None,
    files: RunFiles | None = None,
) -> SwapTrainer:
    """The compiled SwapTrainer of `config` around the given frozen encoders (what `clipswap train` trains): G and D
    (seeded by config.seed), the SwapLoss, the two optimisers. Call under the strategy scope (and after
    set_precision). `perceptual_extractor` overrides the VGG16 build (benchmarks pass a random one); `files` gives
    the VGG16 weights or attribute model files."""
    keras.utils.set_random_seed(config.seed)
    check_identity_width(config, identity_model)
    generator, discriminator = build_networks(config.model, config.loss.discriminator_patch_blocks,
                                              config.loss.discriminator_paired)
    loss = build_loss(config, generator, discriminator, identity_model, clip_model, perceptual_extractor, files)
    trainer = SwapTrainer(loss)
    trainer.compile(*make_optimizers(config), jit_compile=config.compute.xla)
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


@dataclass(frozen=True)
class RunContext:
    """One run as run_training has checked it: what the loop and its steps read.

    Attributes:
        config: the experiment (TrainConfig).
        files: the run's files (RunFiles: ArcFace, CLIP preset, VGG16 weights, attribute model).
        data_dir: the `clipswap align` or `clipswap pairs` folder the shards come from.
        run_dir: the run folder; it holds the checkpoints a resume restores.
        out_dir: where this process writes: run_dir, or a non-chief worker's private folder.
        resume: restore the latest checkpoint of run_dir/checkpoints first.
        strategy: the distribution strategy; None until the precision is set (then `make_strategy()`).
        progress: show the tqdm bar.
        dataset_fn: `seed -> tf.data.Dataset` replacing the shard reader (tests use synthetic data), or None.
        eval_batch: {"target", "source"[, "source_label"]} replacing the held-out batch drawn from the shards, or None.
    """

    config: TrainConfig
    data_dir: str | Path
    run_dir: Path
    out_dir: Path
    files: RunFiles = field(default_factory=RunFiles)
    resume: bool = False
    strategy: tf.distribute.Strategy | None = None
    progress: bool = True
    dataset_fn: Callable[[int], tf.data.Dataset] | None = None
    eval_batch: Mapping[str, np.ndarray] | None = None

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync


#: Refusals of the layers below that run_training raises as TrainingSetupError (wrapped once, in run_training).
SETUP_REFUSALS = (ConfigError, PairsError, ShardError)


def run_training(
    config: TrainConfig,
    data_dir: str | Path,
    run_dir: str | Path,
    *,
    files: RunFiles | None = None,
    resume: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    progress: bool = True,
    dataset_fn: Callable[[int], tf.data.Dataset] | None = None,
    eval_batch: Mapping[str, np.ndarray] | None = None,
) -> RunResult:
    """Train according to `config` on the shards in `data_dir`, writing the run folder (module docstring).

    Args:
        config: the experiment; check_runnable refuses it here when `files` lack what it needs.
        files: the run's files (default: none).
        resume: continue from the latest checkpoint in run_dir/checkpoints (required when it has any).
        strategy: distribution strategy (default `make_strategy()`).
        dataset_fn: `seed -> tf.data.Dataset` overriding the shard reader (tests use synthetic data).
        eval_batch: dict {"target", "source"} overriding the held-out batch.
    """
    run_dir = Path(run_dir)
    checkpoint_dir = run_dir / "checkpoints"
    has_checkpoints = newest_checkpoint(checkpoint_dir) is not None
    if resume and not has_checkpoints:
        if not (run_dir / "config.json").is_file():
            # Before the folder is made: a failed --resume leaves no empty run folder behind.
            raise TrainingSetupError(f"--resume: no checkpoint in {checkpoint_dir}")
        # A run stopped before its first checkpoint: resuming it is starting it again (its log rows are dropped).
        check_resume_config(run_dir, config)
        logger.warning("--resume: %s has no checkpoint yet (the run stopped before its first one); starting from "
                       "step 0", run_dir)
        forget_after(run_dir, -1)
        resume = False
    created = not run_dir.exists()
    run_dir = ensure_writable_dir(run_dir)
    context = RunContext(config, data_dir, run_dir, run_dir, files or RunFiles(), resume, strategy, progress,
                         dataset_fn, eval_batch)
    try:
        return _run_training_in(context, has_checkpoints)
    except (TrainingSetupError, *SETUP_REFUSALS) as error:
        if created and not any(path.is_file() for path in run_dir.rglob("*")):
            shutil.rmtree(run_dir)  # a run that failed before writing anything leaves no empty folder
        if isinstance(error, TrainingSetupError):
            raise
        # The one place a refusal from below becomes the run's own error, its message unchanged.
        raise TrainingSetupError(str(error)) from error


def _check_before_loading(context: RunContext, has_checkpoints: bool) -> None:
    """What can be refused before the data and the models are loaded (a wrong path should not cost minutes first)."""
    config, run_dir = context.config, context.run_dir
    if has_checkpoints and not context.resume:
        raise TrainingSetupError(f"{run_dir} already holds checkpoints: pass --resume or choose a new --run-dir")
    if context.resume:
        check_resume_config(run_dir, config)
    check_runnable(config, context.files, context.replicas)
    attribute = ATTRIBUTES.get(config.loss.attribute_network)
    if config.weights.att and attribute.check is not None:
        load_object(attribute.check)(context.files)


def _run_training_in(context: RunContext, has_checkpoints: bool) -> RunResult:
    """run_training once its folder exists: the strategy (the checks need its replica count), the checks, the
    precision, then the loop."""
    context = dataclasses.replace(context, strategy=context.strategy or make_strategy())
    _check_before_loading(context, has_checkpoints)
    set_precision(context.config.compute.precision)
    if not is_chief(context.strategy):
        # A non-chief worker takes every step (and every save: they are collective) but must not write the run
        # folder the chief writes (the same path on a shared or local disk): its copy goes to a private folder
        # that is removed at the end. It resumes from the chief's checkpoints.
        task = context.strategy.cluster_resolver.task_id
        worker_dir = Path(tempfile.mkdtemp(prefix=f"clipswap-worker{task}-"))
        try:
            return _run_loop(dataclasses.replace(context, out_dir=worker_dir))
        finally:
            shutil.rmtree(worker_dir, ignore_errors=True)
    return _run_loop(context)


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


def shard_dataset(seed: int, *, config: TrainConfig, shards: list[Path], pairs: bool,
                  mates: bool = False) -> tf.data.Dataset:
    """The endless training stream over `shards` (`clipswap pairs` shards when `pairs`; `mates`: their records
    hold another photo of each target's person), shuffled by `seed`."""
    from clipswap.training.data import make_pair_dataset, make_train_dataset

    data = config.data
    if pairs:
        return make_pair_dataset(
            shards, data.batch_size, config.model.image_size, same_identity_prob=data.same_identity_prob,
            jitter=data.jitter, seed=seed, shuffle_buffer=data.shuffle_buffer, repeat=True,
            warped="warped" in config.model.conditioning_row.batch_keys, mates=mates,
            landmarks="landmarks" in config.model.conditioning_row.batch_keys,
            source_glasses=config.augmentation.source_glasses,
        )
    return make_train_dataset(
        [str(s) for s in shards], data.batch_size, config.model.image_size,
        same_identity_prob=data.same_identity_prob, jitter=data.jitter, seed=seed,
        shuffle_buffer=data.shuffle_buffer, repeat=True, mates=mates,
    )


def log_same_identity_pairs(data_dir: Path, probability: float) -> str:
    """Log (and return) where the same-identity pairs' sources come from, from the pairs manifest's counts."""
    from clipswap.facedata.pairs import read_manifest

    manifest = read_manifest(data_dir)
    if not manifest.get("mates"):
        message = (f"same-identity pairs ({probability:.0%} of samples) reuse the target's own photo as the source: "
                   f"{data_dir} was made before pairs held another photo of each person (run `clipswap pairs` again)")
    else:
        other, reused = manifest.get("pairs_with_other_photo", 0), manifest.get("pairs_reusing_photo", 0)
        share = reused / max(1, other + reused)
        message = (f"same-identity pairs ({probability:.0%} of samples) take another photo of the target's person as "
                   f"the source; {share:.1%} of records ({reused} of {other + reused}) reuse the target's photo "
                   f"({manifest.get('training_people_with_one_photo', '?')} training people have one photo)")
    logger.info(message)
    return message


def log_shard_same_identity_pairs(shards: list[Path], probability: float) -> bool:
    """Log where the same-identity pairs of aligned shards come from; True when two photos of one person can be
    drawn (some person has two or more faces), False when they must reuse the target's photo."""
    from clipswap.training.data import people_with_several_faces

    several, total = people_with_several_faces([str(s) for s in shards])
    if several:
        logger.info("same-identity pairs (%.0f%% of samples) take two different photos of one of the %d of %d "
                    "training people with two or more faces", 100 * probability, several, total)
    else:
        logger.warning("no training person has two faces: same-identity pairs (%.0f%% of samples) reuse the "
                       "target's own photo as the source", 100 * probability)
    return several > 0


def _check_pairs_folder(context: RunContext, pairs: bool) -> None:
    """A teacher term, or a conditioning whose batches carry the teacher, warps or landmarks (its row's batch_keys),
    needs `clipswap pairs` data holding them; a paired discriminator needs pairs data with other photos of each
    person."""
    from clipswap.facedata.pairs import pairs_have_landmarks, pairs_have_mates, pairs_have_warps

    config, data_dir = context.config, context.data_dir
    if config.weights.teacher and not pairs:
        raise TrainingSetupError(
            f"weights.teacher > 0 needs teacher images: {data_dir} is not a `clipswap pairs` folder "
            "(make one with `clipswap pairs --data ALIGNED --output PAIRS`, or --set weights.teacher=0)"
        )
    row = config.model.conditioning_row
    if "teacher" in row.batch_keys and not pairs:
        raise TrainingSetupError(
            f"a {row.name} generator reads the landmark swap of each pair: {data_dir} is "
            "not a `clipswap pairs` folder (make one with `clipswap pairs --data ALIGNED --output PAIRS`)"
        )
    if "landmarks" in row.batch_keys and not (pairs and pairs_have_warps(data_dir) and pairs_have_landmarks(data_dir)):
        raise TrainingSetupError(
            f"a {row.name} generator's warp learns from the landmarks and the landmark warp of each pair: {data_dir} "
            "is not a `clipswap pairs` folder made by this version (run `clipswap pairs --data ALIGNED --output "
            "PAIRS` again)"
        )
    if "warped" in row.batch_keys and not (pairs and pairs_have_warps(data_dir)):
        raise TrainingSetupError(
            f"a {row.name} generator reads the warped source of each pair: {data_dir} is not a `clipswap pairs` "
            "folder made by this version (run `clipswap pairs --data ALIGNED --output PAIRS` again)"
        )
    if config.loss.discriminator_paired and not (pairs and pairs_have_mates(data_dir)):
        raise TrainingSetupError(
            f"a paired discriminator takes its real pairs from two photos of one person: {data_dir} is not a "
            "`clipswap pairs` folder whose records hold them (run `clipswap pairs --data ALIGNED --output PAIRS` "
            "with this version, or --set discriminator_paired=false)"
        )


def _training_data(context: RunContext) -> tuple[Callable[[int], tf.data.Dataset], dict[str, np.ndarray]]:
    """(seed -> training stream, the fixed held-out batch as arrays): the context's, else read from the shards
    (a pairs folder's training and held-out shards, or an aligned folder's shards with the last one held out). A
    generator reading warped sources gets its held-out batch's warps (heldout_warps)."""
    config, data_dir = context.config, context.data_dir
    dataset_fn, eval_batch = context.dataset_fn, context.eval_batch
    if dataset_fn is None or eval_batch is None:
        from clipswap.facedata.pairs import heldout_shards, is_pairs_folder, pair_shards, pairs_have_mates
        from clipswap.facedata.shards import ShardError
        from clipswap.training.data import make_eval_batch

        pairs = is_pairs_folder(data_dir)
        _check_pairs_folder(context, pairs)
        if pairs:
            train_shards, eval_shards = pair_shards(data_dir), heldout_shards(data_dir)
        else:
            train_shards, eval_shards = split_heldout(find_shards(data_dir))
        if dataset_fn is None:
            if pairs:
                mates = pairs_have_mates(data_dir)
                log_same_identity_pairs(data_dir, config.data.same_identity_prob)
            else:
                try:
                    mates = log_shard_same_identity_pairs(train_shards, config.data.same_identity_prob)
                except tf.errors.DataLossError as error:
                    raise TrainingSetupError(_damaged_shard_message(data_dir, error)) from None
            dataset_fn = functools.partial(shard_dataset, config=config, shards=train_shards, pairs=pairs,
                                           mates=mates)
        if eval_batch is None:
            try:
                eval_batch = make_eval_batch(
                    [str(s) for s in eval_shards], config.schedule.eval_batch_size, config.model.image_size,
                    config.seed + 1,
                )
            except ShardError as error:
                raise TrainingSetupError(f"{error}; make shards with faces with `clipswap align`") from error
            except tf.errors.DataLossError as error:
                raise TrainingSetupError(_damaged_shard_message(data_dir, error)) from None
    eval_batch = {key: np.asarray(value) for key, value in eval_batch.items()}
    if config.model.conditioning_row.warped_source and "warped" not in eval_batch:
        eval_batch.update(heldout_warps(eval_batch, data_dir))
    return dataset_fn, eval_batch


def _build_in_scope(context: RunContext) -> SwapTrainer:
    """The frozen encoders and the compiled trainer, under the strategy's scope, its step function made."""
    with context.strategy.scope():
        config, files = context.config, context.files
        trainer = build_trainer(config, load_identity_encoder(config, files), load_clip(config, files), files=files)
        if files.init_generator and not context.resume:
            copied, left = init_generator_from(trainer.generator, files.init_generator)
            logger.info("the generator starts from %s: %d layers copied, %d left at their initial values%s",
                        files.init_generator, copied, len(left), f" ({', '.join(left[:8])})" if left else "")
        if not context.resume:
            check_shape_directions(trainer.generator)
        trainer.make_train_function()
    return trainer


def _iterate(context: RunContext, dataset: tf.data.Dataset):
    """An iterator over the stream, distributed over the replicas when there are several."""
    if context.replicas > 1:
        return iter(context.strategy.experimental_distribute_dataset(dataset))
    return iter(dataset)


def _start(context: RunContext, trainer: SwapTrainer, dataset_fn: Callable[[int], tf.data.Dataset]
           ) -> tuple[object, TrainingCheckpoints, int]:
    """(data iterator, checkpoints, first step): a fresh stream from step 0, or the latest checkpoint restored, with
    its data position when it holds one (else a stream reseeded by the step, so the resumed run does not replay the
    start), and the run folder's rows after that step dropped."""
    config = context.config
    iterator = _iterate(context, dataset_fn(config.seed))
    save_data = config.data.checkpoint_data
    if save_data and not isinstance(iterator, tf.data.Iterator):
        # tf.distribute's DistributedIterator cannot be checkpointed: a distributed resume reseeds the data instead.
        logger.warning("the distributed data iterator cannot be checkpointed; a resumed run reseeds the data order")
        save_data = False
    checkpoints = TrainingCheckpoints(context.out_dir / "checkpoints", trainer, config.schedule.keep_checkpoints,
                                      iterator if save_data else None)
    start_step = 0
    if context.resume:
        start_step = checkpoints.restore(newest_checkpoint(context.run_dir / "checkpoints")[1])
        if not checkpoints.data_restored:
            if save_data:
                # A state file without a data position: the JAX loop's, or one saved without it.
                logger.info("the checkpoint holds no tf.data position: the data order is reseeded by the step")
            iterator = _iterate(context, dataset_fn(config.seed + start_step))
            checkpoints.data_iterator = iterator if save_data else None
        logger.info("resuming at step %d of %d", start_step, config.schedule.steps)
        forget_after(context.out_dir, start_step)
    return iterator, checkpoints, start_step


def _callbacks(
    context: RunContext, trainer: SwapTrainer, checkpoints: TrainingCheckpoints, eval_batch: dict[str, np.ndarray],
    writer: tf.summary.SummaryWriter, start_step: int,
) -> tuple[keras.callbacks.CallbackList, HeldoutIdentity]:
    """The run's callbacks in the order they run (the guard before the checkpoint), and the held-out one."""
    schedule, out_dir = context.config.schedule, context.out_dir
    heldout = HeldoutIdentity(trainer.swap_loss, eval_batch, schedule.eval_every, writer, out_dir / "heldout.jsonl")
    grid_batch = {key: value[:GRID_ROWS] for key, value in eval_batch.items()}
    callbacks = [
        NonFiniteGuard(lambda: checkpoints.latest),
        ScalarLogger(writer, schedule.log_every, out_dir / "metrics.jsonl"),
        heldout,
        ImageGridWriter(trainer.swap_loss, grid_batch, schedule.image_every, writer, out_dir / "images"),
        ProgressBar(disable=not context.progress),
        CheckpointSaver(checkpoints, schedule.checkpoint_every),
    ]
    callback_list = keras.callbacks.CallbackList(callbacks, model=trainer, steps=schedule.steps,
                                                 initial_step=start_step)
    return callback_list, heldout


def _take_step(context: RunContext, trainer: SwapTrainer, iterator) -> tuple[int, dict[str, float]]:
    """One optimisation step: (the global step after it, its logs: every loss figure, lr_g, lr_d, step_time,
    images_per_s)."""
    started = time.perf_counter()
    trainer.reset_metrics()
    try:
        outputs = trainer.train_function(iterator)
    except tf.errors.DataLossError as error:
        # A shard cut short or damaged on disk (the checkpoints written so far stay; --resume continues).
        raise TrainingSetupError(_damaged_shard_message(context.data_dir, error)) from None
    # Scalars, or [1] under a MultiWorkerMirroredStrategy outside multi-worker mode (see SwapTrainer).
    logs = {name: float(np.asarray(value).reshape(-1)[0]) for name, value in outputs.items()}
    elapsed = time.perf_counter() - started
    logs.update(
        lr_g=current_learning_rate(trainer.g_optimizer),
        lr_d=current_learning_rate(trainer.d_optimizer),
        step_time=elapsed,
        images_per_s=context.config.data.batch_size / elapsed,
    )
    return int(trainer.step_counter.numpy()), logs


def _export(context: RunContext, trainer: SwapTrainer, step: int) -> Path | None:
    """A finished run's generator as RUN_DIR/generator.keras + .json (the chief's only); None otherwise."""
    if step < context.config.schedule.steps or context.out_dir != context.run_dir:
        return None
    from clipswap.checkpoints.native import save_generator

    exported = context.run_dir / "generator.keras"
    save_generator(trainer.generator, context.config.model, exported, step=step, trained_by="clipswap train",
                   preset=context.config.preset)
    return exported


def _run_loop(context: RunContext) -> RunResult:
    """run_training after the checks: data, trainer, resume, then the steps with their callbacks, then the export."""
    config = context.config
    dataset_fn, eval_batch = _training_data(context)
    trainer = _build_in_scope(context)
    write_text_atomic(context.out_dir / "config.json", config.to_json())
    iterator, checkpoints, start_step = _start(context, trainer, dataset_fn)

    writer = tf.summary.create_file_writer(str(context.out_dir / "logs"))
    callbacks, heldout = _callbacks(context, trainer, checkpoints, eval_batch, writer, start_step)
    step, logs = start_step, {}
    try:
        callbacks.on_train_begin()
        while step < config.schedule.steps:
            step, logs = _take_step(context, trainer, iterator)
            callbacks.on_train_batch_end(step, logs)
    finally:
        callbacks.on_train_end()
        writer.flush()
    return RunResult(context.run_dir, start_step, step, _export(context, trainer, step), heldout.history, logs)
