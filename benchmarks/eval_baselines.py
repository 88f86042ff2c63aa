"""Baselines of the evaluation metrics: the swap replaced by the target (a perfect attribute copy with no identity
transfer) and by the source (perfect identity, no attributes). Real swaps should land between the two rows.

Run (about 20 s on a 2-core CPU for 40 pairs):
    python benchmarks/eval_baselines.py --images ../shared/data/lfw --pairs 40 --seed 0 --output-dir runs/eval_baselines

Writes OUTPUT_DIR/pairs.tsv (the `sample` protocol), OUTPUT_DIR/{as_target,as_source}/metrics.{json,md} and
OUTPUT_DIR/baselines.json, and prints one markdown table with both rows.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

from clipswap.evaluation.pairs import read_pairs
from clipswap.evaluation.protocols import sample_protocol
from clipswap.evaluation.report import METRIC_COLUMNS, headline_values, json_safe
from clipswap.evaluation.runner import run_evaluation

COLUMNS = ("id_retrieval", "id_similarity", "pose_error", "expression_error", "ssim", "psnr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True, help="image folder (per-person subfolders, e.g. LFW)")
    parser.add_argument("--pairs", type=int, default=40, help="number of random pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--identity-model", default="sface", help="sface, dlib or an ArcFace/CosFace .h5 path")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/eval_baselines"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    pairs_file = sample_protocol(args.images, args.output_dir, args.pairs, seed=args.seed)
    pairs = read_pairs(pairs_file)
    protocol = f"sample, {len(pairs)} pairs from {args.images.name}, seed {args.seed}"
    rows, summary = [], {}
    for name, pick in (("output = target", lambda p: p.target), ("output = source", lambda p: p.source)):
        folder = args.output_dir / ("as_target" if "target" in name else "as_source")
        start = time.perf_counter()
        metrics = run_evaluation(
            [replace(p, output=pick(p)) for p in pairs],
            folder,
            identity_model=args.identity_model,
            progress=False,
            protocol=protocol,
            run_name=name,
        )
        seconds = time.perf_counter() - start
        values = headline_values(metrics["aggregate"])
        failed = {key: metrics["aggregate"][key]["failed"] for key in COLUMNS}
        summary[name] = {"values": values, "failed": failed, "failures": metrics["failures"], "seconds": seconds}
        cells = []
        for key in COLUMNS:
            value = values[key]
            cells.append("∞" if value == float("inf") else METRIC_COLUMNS[key][1].format(value))
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {sum(metrics['failures'].values())} |")
        identity_model = metrics["identity_model"]

    header = "| baseline | " + " | ".join(METRIC_COLUMNS[k][0] for k in COLUMNS) + " | faces not found |"
    print(f"{protocol}; identity model: {identity_model}\n")
    print(header)
    print("|" + "---|" * (len(COLUMNS) + 2))
    print("\n".join(rows))
    (args.output_dir / "baselines.json").write_text(
        json.dumps(json_safe({"protocol": protocol, "identity_model": identity_model, "baselines": summary}), indent=2)
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
