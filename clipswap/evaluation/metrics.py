"""The evaluation metrics, declared once: key, table heading, number format, which way is better and how the runner
summarises it.

The runner (clipswap.evaluation.runner) summarises every metric of kind "pair" from its per-pair record field, the
report (clipswap.evaluation.report) takes its headings, formats and table order from here, and benchmarks read the
same headings. A new metric is one entry here plus the code that fills its per-pair field.
"""

from __future__ import annotations

from dataclasses import dataclass

#: How the runner makes a metric's headline number.
#:   pair     the mean over pairs of one per-pair record field (times `scale`)
#:   gallery  top-1 retrieval of each swap among the source images (the runner's gallery)
#:   set      a statistic of the whole set of swaps (FID)
#:   cost     the generator's cost (parameters, MACs, latency), not a property of the swaps
KINDS = ("pair", "gallery", "set", "cost")


@dataclass(frozen=True)
class Metric:
    """One evaluation metric.

    Attributes:
        key: its key in metrics.json's aggregate block (and the paper tables' columns).
        heading: the column heading of the reports, with its unit and an arrow for the better direction.
        fmt: str.format pattern of its value.
        higher_is_better: True, False, or None (a cost column with no better direction).
        kind: one of KINDS.
        field: for kind "pair", the per-pair record field averaged.
        scale: the factor applied to each per-pair value (100 for a fraction shown in percent).
        note: the note of its summary when the runner has no more specific one.
    """

    key: str
    heading: str
    fmt: str
    higher_is_better: bool | None
    kind: str
    field: str | None = None
    scale: float = 1.0
    note: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.key}: kind must be one of {KINDS}, got {self.kind!r}")
        if (self.kind == "pair") != (self.field is not None):
            raise ValueError(f"metric {self.key}: a field is given exactly for kind 'pair'")


METRICS: tuple[Metric, ...] = (
    Metric("id_retrieval", "ID retrieval % ↑", "{:.2f}", True, "gallery"),
    Metric("id_similarity", "ID similarity ↑", "{:.4f}", True, "pair", "id_similarity"),
    Metric("id_similarity_calibrated", "ID similarity, calibrated ↑", "{:.3f}", True, "pair",
           "id_similarity_calibrated"),
    Metric("id_verified", "Verified as source % ↑", "{:.1f}", True, "pair", "verified_as_source", 100.0),
    Metric("closer_to_source", "Closer to source % ↑", "{:.2f}", True, "pair", "closer_to_source", 100.0,
           note="% of pairs whose swap is nearer its source than its target (identity cosine); output = target: 0"),
    Metric("pose_error", "Pose error ° ↓", "{:.2f}", False, "pair", "pose_error"),
    Metric("expression_error", "Expression error px ↓", "{:.2f}", False, "pair", "expression_error"),
    Metric("sharpness", "Face sharpness x target ↑", "{:.2f}", True, "pair", "sharpness_ratio",
           note="variance of the Laplacian inside the target's face, swap over target (1 = as sharp as the target)"),
    Metric("ssim", "SSIM ↑", "{:.4f}", True, "pair", "ssim"),
    Metric("psnr", "PSNR dB ↑", "{:.2f}", True, "pair", "psnr"),
    Metric("fid", "FID ↓", "{:.2f}", False, "set"),
    Metric("gmacs", "GMACs", "{:.2f}", None, "cost"),
    Metric("params_m", "Params M", "{:.2f}", None, "cost"),
    Metric("latency_ms", "Latency ms/face", "{:.1f}", None, "cost"),
)

#: key -> Metric.
BY_KEY: dict[str, Metric] = {metric.key: metric for metric in METRICS}
if len(BY_KEY) != len(METRICS):
    raise ValueError("two evaluation metrics share a key")

#: The swaps' own metrics (every kind but cost), in table order.
SWAP_METRICS: tuple[str, ...] = tuple(metric.key for metric in METRICS if metric.kind != "cost")
#: The cost columns, in table order.
COST_METRICS: tuple[str, ...] = tuple(metric.key for metric in METRICS if metric.kind == "cost")
#: The metrics summarised from one per-pair field.
PAIR_METRICS: tuple[Metric, ...] = tuple(metric for metric in METRICS if metric.kind == "pair")

__all__ = ["BY_KEY", "COST_METRICS", "KINDS", "METRICS", "PAIR_METRICS", "SWAP_METRICS", "Metric"]
