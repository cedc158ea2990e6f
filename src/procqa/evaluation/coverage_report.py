"""The coverage report: per collection, left out of fitting, how many unanswerable questions
were flagged, how many answerable ones were wrongly flagged, the calibration of confidence
(ECE, AUROC) beside a raw-score threshold, and a reliability diagram. Formatting is pure;
`write_coverage_report` alone touches disk."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import numpy as np

from procqa.evaluation.calibration import BINS, CoverageMeasures, Judged, LeftOut
from procqa.files import write_atomic
from procqa.ranking.coverage import Calibration, judge

MARKDOWN = "coverage.md"
JSON = "coverage.json"
DIAGRAM = "reliability.png"
Results = Mapping[str, LeftOut]


def _row(name: str, m: CoverageMeasures) -> str:
    cells = (
        f"{m.answerable} / {m.unanswerable}",
        f"**{m.unanswerable_flagged:.3f}** ({m.raw_unanswerable_flagged:.3f})",
        f"**{m.answerable_flagged:.3f}** ({m.raw_answerable_flagged:.3f})",
        f"**{m.ece:.3f}** ({m.raw_ece:.3f})",
        f"**{m.auroc:.3f}** ({m.raw_auroc:.3f})",
    )
    return f"| {name} | " + " | ".join(cells) + " |"


def overall(results: Results) -> CoverageMeasures:
    """Every collection's held-out questions together, each judged by the models fitted without it."""
    return Judged.pooled([r.judged for r in results.values()]).measures()


def markdown(results: Results) -> str:
    """The report: one row per collection left out, then all held-out questions together."""
    lines = [
        "# Coverage and confidence, leave one collection out",
        "",
        "Each collection's held-out questions, scored by models fitted on the tuning parts of the",
        "other collections. In brackets: a threshold on the raw top score, chosen the same way.",
        "",
        "| collection | answerable / unanswerable | unanswerable flagged | answerable flagged "
        "| ECE (10 bins) | AUROC, top result right |",
        "|---|---:|---:|---:|---:|---:|",
        *(_row(name, r.judged.measures()) for name, r in results.items()),
        _row("all held out", overall(results)),
        "",
        "## Unanswerable questions not flagged, and answerable ones flagged",
        "",
    ]
    for name, r in results.items():
        for o in r.tested:
            verdict = judge(o.evidence, r.calibration)
            if verdict.covered != o.answerable:
                what = "flagged" if o.answerable else "not flagged"
                lines.append(f"- {name}, {o.kind}, {what}: {o.question} ({verdict.reason or 'covered'})")
    return "\n".join(lines) + "\n"


def reliability(results: Results) -> tuple[list[float], list[float], list[int]]:
    """Per confidence bin of all held-out top results: mean confidence, share right, count."""
    pooled = Judged.pooled([r.judged for r in results.values()])
    c, r = pooled.confidence, pooled.right.astype(np.float64)
    which = np.clip(np.digitize(c, np.linspace(0, 1, BINS + 1)[1:-1]), 0, BINS - 1)
    bins = [b for b in range(BINS) if (which == b).any()]
    return (
        [float(c[which == b].mean()) for b in bins],
        [float(r[which == b].mean()) for b in bins],
        [int((which == b).sum()) for b in bins],
    )


def write_coverage_report(out: Path, results: Results) -> list[Path]:
    """coverage.md, coverage.json and reliability.png in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    confidence, accuracy, count = reliability(results)
    record = {
        "collections": {name: asdict(r.judged.measures()) for name, r in results.items()},
        "all": asdict(overall(results)),
        "reliability": {"confidence": confidence, "accuracy": accuracy, "count": count},
    }
    write_atomic(out / MARKDOWN, markdown(results))
    write_atomic(out / JSON, json.dumps(record, indent=2) + "\n")
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    axes.plot(confidence, accuracy, marker="o", label="procqa, held out")
    for x, y, n in zip(confidence, accuracy, count, strict=True):
        axes.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    axes.set(xlabel="confidence of the top result", ylabel="share right", xlim=(0, 1), ylim=(0, 1))
    axes.set_title("Reliability, leave one collection out")
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(out / DIAGRAM, dpi=110)
    plt.close(figure)
    return [out / MARKDOWN, out / JSON, out / DIAGRAM]


def write_calibration(path: Path, calibration: Calibration) -> None:
    """The fitted models, as `Calibration.load` reads them."""
    write_atomic(path, json.dumps(calibration.as_dict(), indent=1) + "\n")
