"""The training loop on Keras' JAX backend (`clipswap train --backend jax`): the TensorFlow loop's run folder without
TensorFlow.

The same configuration tree, checks and run folder as clipswap.training.run: config.json, checkpoints/ (state files,
clipswap.training.state_files: atomic, the last K kept; the TensorFlow loop's checkpoints are the same files, so
either backend resumes the other's run), metrics.jsonl, heldout.jsonl, images/ and the exported generator.keras +
generator.json. No TensorBoard logs/ (its writer is TensorFlow's). The data is a face pack (clipswap pack) streamed
by clipswap.training.pack_data; the step is clipswap.training.jax_step's jitted JaxSwapStep, whose state lives in
JAX arrays and is written back to the Keras variables only when a callback reads them (held-out evaluation, grids,
checkpoints) and at the end.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from clipswap.atomic import ensure_writable_dir, write_text_atomic
from clipswap.config import ConfigError, RunFiles, TrainConfig, check_runnable
from clipswap.training.assembly import (
    TrainingSetupError,
    build_loss,
    build_networks,
    check_identity_width,
    check_shape_directions,
    init_generator_from,
    load_clip,
    load_identity_encoder,
    make_optimizers,
    set_precision,
)
from clipswap.training.callbacks import (
    CheckpointSaver,
    HeldoutIdentity,
    ImageGridWriter,
    NonFiniteGuard,
    ProgressBar,
    ScalarLogger,
)
from clipswap.training.jax_step import JaxSwapStep, JaxTrainState
from clipswap.training.run_folder import GRID_ROWS, RunResult, check_resume_config, forget_after
from clipswap.training.state_files import CheckpointRestoreError, StateCheckpoints, newest_checkpoint, state_groups

logger = logging.getLogger(__name__)


def learning_rate(optimizer: keras.optimizers.Optimizer, step: int) -> float:
    """The learning rate the optimiser applies at `step` (its schedule's value, or its constant)."""
    schedule = optimizer._learning_rate  # the schedule object; `learning_rate` reads the (unthreaded) iterations
    value = schedule(step) if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule) else schedule
    return float(keras.ops.convert_to_numpy(value))


class _WriteBack(keras.callbacks.Callback):
    """Copies the step's JAX state into the Keras variables before any later callback reads them: on the steps where
    a held-out evaluation, a grid or a checkpoint is due, and at the start and the end."""

    def __init__(self, step: JaxSwapStep, holder: dict, every: tuple[int, ...], last: int):
        super().__init__()
        self.step, self.holder, self.every, self.last = step, holder, every, last

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        if batch == self.last or any(batch % every == 0 for every in self.every):
            self.step.write_back(self.holder["state"])


def _check_data(config: TrainConfig, data_dir: Path):
    """The face pack of `data_dir`, or a TrainingSetupError saying how to make one."""
    from clipswap.facedata.pack import PackError, is_pack, open_pack

    if config.weights.teacher or config.model.conditioning_row.batch_keys:
        raise TrainingSetupError("--backend jax reads a face pack, which has no teacher images, warps or landmarks: "
                                 "train a configuration without the teacher term and with a conditioning that needs "
                                 "none of them (target or target+source_crop; not pre_swap, source_warp or "
                                 "source_flow), or use --backend tensorflow on `clipswap pairs` data")
    if config.loss.discriminator_paired:
        raise TrainingSetupError("--backend jax reads a face pack, whose batches do not carry a second photo of each "
                                 "target's person for a paired discriminator: use --set discriminator_paired=false, or "
                                 "--backend tensorflow on `clipswap pairs` data")
    if not is_pack(data_dir):
        raise TrainingSetupError(f"--backend jax reads a face pack and {data_dir} is not one: make it with "
                                 f"`clipswap pack --data {data_dir} --output PACK`, then --data PACK")
    try:
        return open_pack(data_dir)
    except PackError as error:
        raise TrainingSetupError(str(error)) from error


def run_training_jax(config: TrainConfig, data_dir: str | Path, run_dir: str | Path, *, files: RunFiles | None = None,
                     resume: bool = False, progress: bool = True, workers: int = 2,
                     time_limit: float | None = None) -> RunResult:
    """Train according to `config` on the face pack `data_dir` under Keras' JAX backend, writing the run folder
    (module docstring); the arguments are run.run_training's.

    Args:
        time_limit: seconds from this call after which the run stops at the end of the step in progress, which is
            then checkpointed, scored on the held-out batch and drawn as a last step is (a session on a lent
            machine has minutes); the generator is exported only when config.schedule.steps is reached. None: no
            limit.

    Raises:
        TrainingSetupError: the configuration, data or run folder cannot make a run (one sentence).
    """
    deadline = None if time_limit is None else time.monotonic() + float(time_limit)
    if keras.backend.backend() != "jax":
        raise TrainingSetupError(f"the JAX loop runs under KERAS_BACKEND=jax, not {keras.backend.backend()!r}")
    files = files or RunFiles()
    run_dir, data_dir = Path(run_dir), Path(data_dir)
    found = newest_checkpoint(run_dir / "checkpoints")
    if found and not resume:
        raise TrainingSetupError(f"{run_dir} already holds checkpoints: pass --resume or choose a new --run-dir")
    if found and found[1].suffix != ".npz":
        raise TrainingSetupError(f"{run_dir}'s newest checkpoint ({found[1].name}) is an earlier version's tf.train "
                                 "checkpoint, which only TensorFlow reads: resume it once with `clipswap train "
                                 "--resume` on TensorFlow (it then writes state files), then with --backend jax")
    if resume and not found:
        if not (run_dir / "config.json").is_file():
            raise TrainingSetupError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}")
        logger.warning("--resume: %s has no checkpoint yet; starting from step 0", run_dir)
        forget_after(run_dir, -1)
        resume = False
    if resume:
        check_resume_config(run_dir, config)
    try:
        check_runnable(config, files)
    except ConfigError as error:
        raise TrainingSetupError(str(error)) from error
    if config.compute.precision == "fp16":
        raise TrainingSetupError("fp16 (loss scaling) is the TensorFlow step's only: use --precision bf16 or fp32 "
                                 "with --backend jax")
    pack = _check_data(config, data_dir)
    created = not run_dir.exists()
    run_dir = ensure_writable_dir(run_dir)
    try:
        return _loop(config, files, pack, run_dir, resume, progress, workers, deadline)
    except TrainingSetupError:
        if created and not any(path.is_file() for path in run_dir.rglob("*")):
            shutil.rmtree(run_dir)
        raise


def _loop(config: TrainConfig, files: RunFiles, pack, run_dir: Path, resume: bool, progress: bool,
          workers: int, deadline: float | None) -> RunResult:
    from clipswap.training.pack_data import PackStream, pack_eval_batch

    schedule, data = config.schedule, config.data
    set_precision(config.compute.precision)
    train_records, heldout_records = pack.split()
    stream = PackStream(pack, train_records, data.batch_size, config.model.image_size, data.same_identity_prob,
                        data.jitter, config.seed, workers=workers)
    logger.info("same-identity pairs (%.0f%% of samples) %s", 100 * data.same_identity_prob,
                "take two different photos of one person" if stream.mates else "reuse the target's own photo")
    eval_batch = pack_eval_batch(pack, heldout_records, schedule.eval_batch_size, config.model.image_size,
                                 config.seed + 1)

    keras.utils.set_random_seed(config.seed)
    identity_model, clip_model = load_identity_encoder(config, files), load_clip(config, files)
    check_identity_width(config, identity_model)
    keras.utils.set_random_seed(config.seed)
    generator, discriminator = build_networks(config.model, config.loss.discriminator_patch_blocks,
                                              config.loss.discriminator_paired)
    if files.init_generator and not resume:
        copied, left = init_generator_from(generator, files.init_generator)
        logger.info("the generator starts from %s: %d layers copied, %d left at their initial values",
                    files.init_generator, copied, len(left))
    if not resume:
        check_shape_directions(generator)
    loss = build_loss(config, generator, discriminator, identity_model, clip_model, files=files)
    g_optimizer, d_optimizer = make_optimizers(config)
    step_fn = JaxSwapStep(loss, g_optimizer, d_optimizer, jit=True)
    write_text_atomic(run_dir / "config.json", config.to_json())

    holder: dict[str, JaxTrainState] = {}
    checkpoints = StateCheckpoints(run_dir / "checkpoints",
                                   state_groups(generator, discriminator, g_optimizer, d_optimizer, loss.clip_mean),
                                   schedule.keep_checkpoints, step=lambda: int(holder["state"].step))
    start_step = 0
    if resume:
        try:
            start_step = checkpoints.restore()
        except CheckpointRestoreError as error:
            raise TrainingSetupError(str(error)) from error
        logger.info("resuming at step %d of %d", start_step, schedule.steps)
        forget_after(run_dir, start_step)
    holder["state"] = step_fn.initial_state(start_step)

    heldout = HeldoutIdentity(loss, eval_batch, schedule.eval_every, None, run_dir / "heldout.jsonl")
    scalars = ScalarLogger(None, schedule.log_every, run_dir / "metrics.jsonl")
    grids = ImageGridWriter(loss, {key: value[:GRID_ROWS] for key, value in eval_batch.items()}, schedule.image_every,
                            None, run_dir / "images")
    callbacks = keras.callbacks.CallbackList([
        NonFiniteGuard(lambda: checkpoints.latest),
        _WriteBack(step_fn, holder, (schedule.eval_every, schedule.image_every, schedule.checkpoint_every),
                   schedule.steps),
        scalars,
        heldout,
        grids,
        ProgressBar(disable=not progress),
        CheckpointSaver(checkpoints, schedule.checkpoint_every),
    ], steps=schedule.steps, initial_step=start_step)

    step, logs = start_step, {}
    batches = stream.iterate(start_step)
    try:
        callbacks.on_train_begin()
        while step < schedule.steps:
            started = time.perf_counter()
            holder["state"], outputs = step_fn(holder["state"], next(batches))
            logs = {name: float(np.asarray(value)) for name, value in outputs.items()}
            step += 1
            elapsed = time.perf_counter() - started
            logs.update(lr_g=learning_rate(g_optimizer, step - 1), lr_d=learning_rate(d_optimizer, step - 1),
                        step_time=elapsed, images_per_s=data.batch_size / elapsed)
            callbacks.on_train_batch_end(step, logs)
            if deadline is not None and step < schedule.steps and time.monotonic() >= deadline:
                # The time is up: this step becomes the last one, with what the callbacks give a last step.
                step_fn.write_back(holder["state"])
                scalars.flush(step)  # the rows of a partial logging interval (none when it just ended)
                if step % schedule.checkpoint_every:
                    checkpoints.save()
                if step % schedule.eval_every:
                    heldout.evaluate(step)
                if step % schedule.image_every:
                    grids.write(step)
                logger.info("the time limit stopped the run after step %d of %d", step, schedule.steps)
                break
    finally:
        batches.close()
        callbacks.on_train_end()
    exported = None
    if step >= schedule.steps:
        from clipswap.checkpoints.native import save_generator

        step_fn.write_back(holder["state"])
        exported = run_dir / "generator.keras"
        save_generator(generator, config.model, exported, step=step, trained_by="clipswap train --backend jax",
                       preset=config.preset)
    return RunResult(run_dir, start_step, step, exported, heldout.history, logs)
