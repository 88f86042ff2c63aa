"""metrics.json and metrics.md: our numbers, and our numbers beside the paper's Tables I-III.

The paper's figures are those of its Tables I-III (ClipSwap, FG 2024). Units of our metrics:
ID retrieval in percent (top-1), ID similarity a cosine, closer to source in percent of pairs, pose error in
degrees, expression error in pixels of the aligned 256 crop, SSIM in [0, 1], PSNR in dB, FID, GMACs, parameters in
millions. The paper used other networks for
some metrics (CosFace for retrieval, a Hopenet-style estimator for pose), so only runs measured with the same
identity model and protocol are strictly comparable; the paper's rows are context.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipswap.atomic import write_text_atomic
from clipswap.evaluation.metrics import COST_METRICS, METRICS, SWAP_METRICS

#: metric key -> (column heading, format), in table order (clipswap.evaluation.metrics declares them).
METRIC_COLUMNS: dict[str, tuple[str, str]] = {metric.key: (metric.heading, metric.fmt) for metric in METRICS}

#: The run's own metrics (the aggregate's keys), in the order of our table; cost columns come after them.
OUR_METRICS = SWAP_METRICS


@dataclass(frozen=True)
class PaperTable:
    """One of the paper's tables: title, metric keys (columns) and rows (method, {metric: value}); values are strings
    exactly as printed in the paper, a missing key is a cell the paper leaves empty or marks "NA"."""

    title: str
    metrics: tuple[str, ...]
    rows: tuple[tuple[str, Mapping[str, str]], ...]


PAPER_TABLES: tuple[PaperTable, ...] = (
    PaperTable(
        "Paper Table I: FaceForensics++ (10 frames x 1000 videos)",
        ("id_retrieval", "pose_error", "expression_error", "ssim", "psnr", "gmacs", "params_m"),
        (
            (
                "ClipSwap (paper)",
                {
                    "id_retrieval": "98.91",
                    "pose_error": "1.73",
                    "expression_error": "5.76",
                    "ssim": "0.98",
                    "psnr": "33.04",
                    "gmacs": "53.56",
                    "params_m": "174.23",
                },
            ),
            (
                "FaceDancer (paper)",
                {
                    "id_retrieval": "98.84",
                    "pose_error": "2.04",
                    "expression_error": "7.97",
                    "ssim": "0.97",
                    "psnr": "33.34",
                },
            ),
            ("SimSwap (paper)", {"gmacs": "55.69", "params_m": "107.24"}),
            ("HifiFace (paper)", {"gmacs": "102.39", "params_m": "146.8"}),
        ),
    ),
    PaperTable(
        "Paper Table II: CelebA-HQ and FFHQ (10K random pairs each)",
        ("id_similarity", "pose_error", "expression_error", "ssim", "psnr"),
        (
            (
                "ClipSwap, CelebA-HQ (paper)",
                {
                    "id_similarity": "0.55",
                    "pose_error": "2.83",
                    "expression_error": "25.52",
                    "ssim": "0.94",
                    "psnr": "28.90",
                },
            ),
            (
                "ClipSwap, FFHQ (paper)",
                {
                    "id_similarity": "0.53",
                    "pose_error": "2.84",
                    "expression_error": "30.77",
                    "ssim": "0.91",
                    "psnr": "26.50",
                },
            ),
        ),
    ),
    PaperTable(
        "Paper Table III: ablation on CelebA-HQ",
        ("id_similarity", "pose_error", "expression_error", "ssim", "psnr"),
        (
            (
                "ClipSwap, full (paper)",
                {
                    "id_similarity": "0.55",
                    "pose_error": "2.83",
                    "expression_error": "25.52",
                    "ssim": "0.94",
                    "psnr": "28.90",
                },
            ),
            (
                "w/o CLIP (paper)",
                {
                    "id_similarity": "0.52",
                    "pose_error": "3.13",
                    "expression_error": "25.67",
                    "ssim": "0.93",
                    "psnr": "27.78",
                },
            ),
            (
                "w/o attribute loss (paper)",
                {
                    "id_similarity": "0.54",
                    "pose_error": "2.99",
                    "expression_error": "26.31",
                    "ssim": "0.94",
                    "psnr": "27.90",
                },
            ),
            (
                "w/o augmentation (paper)",
                {
                    "id_similarity": "0.47",
                    "pose_error": "3.99",
                    "expression_error": "31.41",
                    "ssim": "0.90",
                    "psnr": "24.03",
                },
            ),
            (
                "w/ ArcFace-contrastive (paper)",
                {
                    "id_similarity": "0.52",
                    "pose_error": "2.92",
                    "expression_error": "25.71",
                    "ssim": "0.94",
                    "psnr": "28.86",
                },
            ),
        ),
    ),
)


def json_safe(value: Any) -> Any:
    """Replace non-finite floats for strict JSON: +inf -> "inf", -inf -> "-inf", NaN -> None (recursively)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def headline_values(aggregate: Mapping[str, Any]) -> dict[str, float | None]:
    """Metric key -> our headline number (None when not measured), from the runner's aggregate block."""
    values: dict[str, float | None] = {}
    for key in OUR_METRICS:
        entry = aggregate.get(key) or {}
        values[key] = entry.get("value")
    cost = aggregate.get("cost") or {}
    values["gmacs"] = cost.get("macs") / 1e9 if cost.get("macs") is not None else None
    values["params_m"] = cost.get("params") / 1e6 if cost.get("params") is not None else None
    values["latency_ms"] = cost.get("latency_ms_median")
    return values


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return fmt.format(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(metrics: Mapping[str, Any], run_name: str = "this run") -> str:
    """metrics.md text: our table with per-metric counts, then each paper table with our row appended."""
    aggregate = metrics["aggregate"]
    ours = headline_values(aggregate)
    lines = [
        "# ClipSwap evaluation",
        "",
        f"- pairs: {metrics['num_pairs']}"
        + (f" (from `{metrics['pairs_file']}`)" if metrics.get("pairs_file") else ""),
        f"- identity model: {metrics['identity_model']}"
        + (f" ({metrics['identity_model_note']})" if metrics.get("identity_model_note") else ""),
    ]
    if metrics.get("protocol"):
        lines.append(f"- protocol: {metrics['protocol']}")
    lines += ["", "## Our numbers", ""]
    rows = []
    for key in OUR_METRICS:
        entry = aggregate.get(key) or {}
        heading, fmt = METRIC_COLUMNS[key]
        note = entry.get("note", "")
        rows.append(
            [heading, _cell(entry.get("value"), fmt), str(entry.get("n", 0)), str(entry.get("failed", 0)), note]
        )
    cost = aggregate.get("cost") or {}
    for key in COST_METRICS:
        heading, fmt = METRIC_COLUMNS[key]
        note = cost.get("latency_note", "") if key == "latency_ms" else cost.get("note", "")
        rows.append(
            [heading, _cell(ours[key], fmt), str(cost.get("latency_n", "")) if key == "latency_ms" else "", "", note]
        )
    lines += _table(["metric", "value", "pairs scored", "failed (no face / unreadable)", "note"], rows)
    failures = metrics.get("failures") or {}
    if failures:
        lines += [
            "",
            "Faces not found and other failures: "
            + ", ".join(f"{name} {count}" for name, count in failures.items())
            + ".",
        ]
    for table in PAPER_TABLES:
        header = ["method"] + [METRIC_COLUMNS[key][0] for key in table.metrics]
        body = [
            [method] + [_cell(values.get(key), METRIC_COLUMNS[key][1]) for key in table.metrics]
            for method, values in table.rows
        ]
        body.append([f"**{run_name}**"] + [_cell(ours.get(key), METRIC_COLUMNS[key][1]) for key in table.metrics])
        lines += ["", f"## {table.title}", ""] + _table(header, body)
    lines += [
        "",
        "Notes: the paper retrieves identities with CosFace and measures pose with a Hopenet-style network; here the "
        f"identity model is {metrics['identity_model']} and pose comes from a solvePnP fit of dlib landmarks. "
        "Expression error is in pixels of the aligned 256 crop (the paper does not state its unit). "
        "Paper rows are context, not a like-for-like comparison.",
        "",
    ]
    return "\n".join(lines)


def write_reports(metrics: Mapping[str, Any], output_dir: str | Path, run_name: str = "this run") -> tuple[Path, Path]:
    """Write metrics.json (strict JSON, see json_safe) and metrics.md atomically; returns both paths."""
    output_dir = Path(output_dir)
    json_path, md_path = output_dir / "metrics.json", output_dir / "metrics.md"
    write_text_atomic(json_path, json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n")
    write_text_atomic(md_path, render_markdown(metrics, run_name))
    return json_path, md_path
