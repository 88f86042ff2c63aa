"""Put a trained generator into pretrained_ckpts/demo/ as the embedded demo model.

    python tools/ship_demo.py --run RUN_DIR --metrics EVAL_DIR/metrics.json --pairs PAIRS_DIR [--output DIR]
        [--geometry GEOMETRY_DIR/geometry.keras] [--paste-detail 1.0] [--paste-sharpen 1.0]

RUN_DIR is a finished `clipswap train` run (its exported generator.keras and config.json); EVAL_DIR is the output of
`clipswap evaluate --pairs PAIRS_DIR/heldout_pairs.tsv --model RUN_DIR/generator.keras --identity-model dlib`;
PAIRS_DIR is the `clipswap pairs` folder it trained on. The generator is loaded (its SHA-256 checked against the run's
manifest) and saved again with a manifest that gains what a shipped model must say of itself: the training preset and
its overrides, the data (dataset, pair and identity counts, the held-out identities) and the held-out metrics with the
judge that measured them. With --geometry the geometry network the run's attribute term read is shipped beside it (hash
checked, its manifest kept) and named in the generator's manifest; --paste-detail records how much of the target's fine
detail the swap adds to this generator's output (clipswap swap --detail; measured with clipswap evaluate --detail) and
--paste-sharpen the unsharp mask it applies to that output (clipswap swap --sharpen; clipswap evaluate --sharpen).
Written atomically; an existing demo is replaced only when everything succeeded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from clipswap.checkpoints.errors import CheckpointError
from clipswap.checkpoints.geometry import load_geometry
from clipswap.checkpoints.native import load_generator, manifest_path, save_generator, sha256_of
from clipswap.checkpoints.pretrained import DEMO_DIR
from clipswap.config import ConfigError, migrate_flat_config

#: The metrics copied from the evaluation into the manifest.
METRICS = ("id_retrieval", "closer_to_source", "id_similarity", "pose_error", "expression_error", "ssim", "psnr",
           "sharpness")


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"error: {what} {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SystemExit(f"error: {what} {path} is not valid JSON ({error})") from None


def ship(run: Path, metrics_file: Path, pairs: Path, output: Path, geometry: Path | None = None,
         paste_detail: float = 0.0, paste_sharpen: float = 0.0) -> Path:
    """Write output/generator.keras and its manifest (and geometry.keras + geometry.json); returns the manifest
    path."""
    if not 0.0 <= paste_detail <= 1.0:
        raise SystemExit(f"error: --paste-detail must be in [0, 1], got {paste_detail}")
    if not 0.0 <= paste_sharpen <= 2.0:
        raise SystemExit(f"error: --paste-sharpen must be in [0, 2], got {paste_sharpen}")
    try:
        checkpoint = load_generator(run / "generator.keras")
        geometry_model = load_geometry(geometry) if geometry is not None else None
    except (CheckpointError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    try:
        # a run written before the configuration tree (flat keys) is read through its migration
        config = migrate_flat_config(_read_json(run / "config.json", "the run's configuration"))
    except ConfigError as error:
        raise SystemExit(f"error: {run / 'config.json'} is not a training configuration ({error})") from None
    evaluation = _read_json(metrics_file, "the evaluation")
    pair_facts = _read_json(pairs / "pairs_manifest.json", "the pairs manifest")
    aggregate = evaluation.get("aggregate", {})
    missing = [name for name in METRICS if name not in aggregate]
    if missing:
        raise SystemExit(f"error: {metrics_file} lacks {missing}: run `clipswap evaluate --identity-model dlib` on it")
    extra = {
        "trained_by": "clipswap train",
        "training": {"preset": config.get("preset"), "steps": checkpoint.step,
                     "batch_size": config.get("data", {}).get("batch_size"),
                     "precision": config.get("compute", {}).get("precision"), "weights": config.get("weights")},
        "data": {key: pair_facts.get(key) for key in ("faces", "training_identities", "pairs", "size", "seed",
                                                       "heldout_identities", "teacher")}
                | {"dataset": "lfw_train (../shared/data/lfw_train, aligned with clipswap align --size 128)"},
        "metrics": {
            "judge": evaluation.get("identity_model"),
            "pairs": evaluation.get("num_pairs"),
            "what": "clipswap evaluate on held-out identities never trained on (docs/demo_model.md)",
            **{name: aggregate[name]["value"] for name in METRICS},
        },
        "paste_detail": paste_detail,
        "paste_sharpen": paste_sharpen,
    }
    if geometry_model is not None:
        extra["geometry"] = {"file": "geometry.keras", "sha256": sha256_of(geometry.with_suffix(".keras"))}
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output) as staging:
        staged = Path(staging) / "generator.keras"
        save_generator(checkpoint.model, checkpoint.config, staged, step=checkpoint.step, **extra)
        load_generator(staged)  # the written pair loads (hash and config) before it replaces anything
        names = ["generator.keras", "generator.json"]
        if geometry is not None:
            for name in ("geometry.keras", "geometry.json"):
                shutil.copyfile(geometry.with_name(name), Path(staging, name))
            load_geometry(Path(staging, "geometry.keras"))
            names += ["geometry.keras", "geometry.json"]
        for name in names:
            Path(staging, name).replace(output / name)
    return manifest_path(output / "generator.keras")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="the clipswap train run folder")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics.json of clipswap evaluate")
    parser.add_argument("--pairs", type=Path, required=True, help="the clipswap pairs folder the run trained on")
    parser.add_argument("--output", type=Path, default=DEMO_DIR, help=f"where the demo goes (default {DEMO_DIR})")
    parser.add_argument("--geometry", type=Path, default=None,
                        help="the geometry.keras (with geometry.json) the run's attribute term read")
    parser.add_argument("--paste-detail", type=float, default=0.0,
                        help="the target's fine detail the swap adds to this generator's output, in [0, 1]")
    parser.add_argument("--paste-sharpen", type=float, default=0.0,
                        help="the unsharp mask the swap applies to this generator's output, in [0, 2]")
    args = parser.parse_args(argv)
    written = ship(args.run, args.metrics, args.pairs, args.output, args.geometry, args.paste_detail,
                   args.paste_sharpen)
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
