"""The run folder's records, on either backend: what a finished run returns, the configuration a resume must share
with the run's config.json, and the cleaning of a resumed folder (rows logged after the checkpoint it resumes from,
partial checkpoint files). No TensorFlow here: the TensorFlow loop (clipswap.training.run) and the JAX loop
(clipswap.training.jax_run) share them.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from clipswap.atomic import write_text_atomic
from clipswap.config import ConfigError, TrainConfig
from clipswap.jsonfile import JSONFileError, read_json_object
from clipswap.training.assembly import TrainingSetupError

logger = logging.getLogger(__name__)

#: Image grids show the first rows of the held-out batch (the whole batch scores the held-out identity loss).
GRID_ROWS = 8


@dataclass
class RunResult:
    run_dir: Path
    start_step: int
    final_step: int
    exported: Path | None
    heldout: list[tuple[int, float]] = field(default_factory=list)
    last_logs: dict[str, float] = field(default_factory=dict)


#: The keys a resumed run must share with its config.json: what shapes the restored state.
RESUME_MUST_MATCH = ("model", "weights", "compute.precision", "loss.perceptual_network", "loss.attribute_network",
                     "loss.discriminator_patch_blocks", "loss.discriminator_paired", "data.batch_size")


def check_resume_config(run_dir: Path, config: TrainConfig) -> None:
    saved_path = run_dir / "config.json"
    if not saved_path.is_file():
        return
    try:
        saved = read_json_object(saved_path)
    except JSONFileError as error:
        raise TrainingSetupError(f"--resume: {error}; restore it or start a new --run-dir") from error
    try:
        # A config.json written before the tree (flat keys) is read through the one migration function.
        saved = TrainConfig.from_dict(saved).to_dict()
    except ConfigError as error:
        raise TrainingSetupError(f"--resume: the run's config.json cannot be read as a configuration ({error}); "
                                 "start a new --run-dir") from error
    current = config.to_dict()
    # What shapes the state must match; the schedule (steps, intervals) may change on resume.
    for key in RESUME_MUST_MATCH:
        section, _, name = key.partition(".")
        before = saved[section][name] if name else saved[section]
        now = current[section][name] if name else current[section]
        if before != now:
            raise TrainingSetupError(
                f"--resume: {key} differs from the run's config.json ({before} vs {now}); "
                "resume with the same configuration or start a new --run-dir"
            )


#: The run's JSON-lines logs; each row has a "step".
RUN_LOGS = ("metrics.jsonl", "heldout.jsonl")


def forget_after(run_dir: Path, step: int) -> None:
    """Make a resumed run's folder say what the restored state did: drop the log rows a killed run wrote after the
    checkpoint it resumes from (they would appear twice), and remove the partial checkpoint folders a kill during a
    save leaves behind (`state-N.tfdata_temp*`, and `ckpt-N_temp*` of earlier versions; TensorFlow renames them into
    place only when a save completes)."""
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

