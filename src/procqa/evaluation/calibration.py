"""Fitting and measuring coverage and confidence, leave one collection out.

Each question of each collection, answerable or not, is searched once and observed: its
evidence (`procqa.ranking.coverage.Evidence`) and whether each result answers it. Two
logistic regressions (scikit-learn) are fitted on the tuning parts of the other collections:
coverage (is the question answerable here at all) and confidence (does this result answer
it), in which each question's top result weighs as much as its other results together,
since its confidence is the one people read first. The coverage threshold is the one that
flags `FLAG_ANSWERABLE` of the other collections' answerable questions, out of fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from procqa.evaluation.questions import DEV, HELDOUT
from procqa.ranking.coverage import (
    QUESTION_FEATURES,
    RESULT_FEATURES,
    Calibration,
    Evidence,
    Logistic,
    judge,
)

FLAG_ANSWERABLE = 0.015  # share of answerable tuning questions the threshold may flag
RESULTS = 5  # results per question the confidence model learns from
# In fitting confidence a question's top result, the one people read first, weighs as much as
# its other results together: fitted on all results alike, the model judged lower results well
# but told right top results from wrong ones less well (held out: AUROC 0.893, against 0.902).
TOP_WEIGHT = RESULTS - 1
C_VALUES = (0.03, 0.1, 0.3, 1.0, 3.0)  # inverse regularisation tried for the coverage model (scikit-learn's C)
BINS = 10
TOP_SCORE = QUESTION_FEATURES.index("top_score")


@dataclass(frozen=True)
class Observation:
    """One question searched in one collection."""

    collection: str
    question: str
    kind: str
    split: str
    answerable: bool
    evidence: Evidence
    relevant: tuple[bool, ...]  # per result, best first

    @property
    def top_right(self) -> bool:
        return bool(self.relevant) and self.relevant[0]


@dataclass(frozen=True)
class CoverageMeasures:
    """How coverage and confidence did on some questions, beside a raw-score threshold."""

    answerable: int
    unanswerable: int
    unanswerable_flagged: float
    answerable_flagged: float
    ece: float
    auroc: float
    raw_unanswerable_flagged: float
    raw_answerable_flagged: float
    raw_ece: float
    raw_auroc: float


def _rows(observations: Sequence[Observation]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Confidence rows (question and result features), their labels, their collections, and
    which rows are top results."""
    rows, labels, groups, top = [], [], [], []
    for o in observations:
        for i, right in enumerate(o.relevant[:RESULTS]):
            rows.append(np.concatenate([o.evidence.question, o.evidence.results[i]]))
            labels.append(right)
            groups.append(o.collection)
            top.append(i == 0)
    return np.array(rows, dtype=np.float64), np.array(labels, dtype=np.int64), np.array(groups), np.array(top)


def _logistic(pipeline: Pipeline, features: Sequence[str]) -> Logistic:
    scaler, model = pipeline[0], pipeline[-1]
    return Logistic(
        features=tuple(features),
        mean=tuple(float(v) for v in scaler.mean_),
        scale=tuple(float(v) for v in scaler.scale_),
        coef=tuple(float(v) for v in model.coef_[0]),
        intercept=float(model.intercept_[0]),
    )


def _model(c: float = 1.0) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))


def _out_of_fold(x: np.ndarray, y: np.ndarray, groups: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Each row's probability from a model fitted without its collection (or 5 folds, with one)."""
    folds = min(len(set(groups.tolist())), 5)
    splitter = GroupKFold(n_splits=folds) if folds >= 2 else 5
    held = cross_val_predict(_model(c), x, y, groups=groups, cv=splitter, method="predict_proba")
    return np.asarray(held)[:, 1]


def _coverage(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[Pipeline, float]:
    """The coverage model and its threshold. Its C is the one of C_VALUES whose
    out-of-fold probabilities best tell answerable questions from the rest (AUROC); the
    threshold flags FLAG_ANSWERABLE of the answerable ones among those probabilities."""
    held = {c: _out_of_fold(x, y, groups, c=c) for c in C_VALUES}
    best = max(C_VALUES, key=lambda c: _auroc(held[c], y))
    threshold = float(np.quantile(held[best][y == 1], FLAG_ANSWERABLE))
    return _model(best).fit(x, y), threshold


def fit(observations: Sequence[Observation]) -> Calibration:
    """Both models and the threshold, fitted on the given questions."""
    x = np.array([o.evidence.question for o in observations], dtype=np.float64)
    y = np.array([o.answerable for o in observations], dtype=np.int64)
    groups = np.array([o.collection for o in observations])
    coverage, threshold = _coverage(x, y, groups)
    rows, labels, _, top = _rows(observations)
    weights = np.where(top, TOP_WEIGHT, 1.0)
    confidence = _model().fit(rows, labels, logisticregression__sample_weight=weights)
    return Calibration(
        coverage=_logistic(coverage, QUESTION_FEATURES),
        threshold=threshold,
        confidence=_logistic(confidence, QUESTION_FEATURES + RESULT_FEATURES),
        fitted_on=tuple(sorted(set(groups.tolist()))),
    )


def expected_calibration_error(probabilities: np.ndarray, outcomes: np.ndarray, *, bins: int = BINS) -> float:
    """The gap between confidence and accuracy, averaged over equal-width bins by their size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.sum() * abs(float(probabilities[inside].mean()) - float(outcomes[inside].mean()))
    return total / max(len(probabilities), 1)


def _auroc(scores: np.ndarray, outcomes: np.ndarray) -> float:
    return float(roc_auc_score(outcomes, scores)) if 0 < outcomes.sum() < len(outcomes) else float("nan")


@dataclass(frozen=True)
class Judged:
    """Held-out questions as judged by a calibration and by a raw-score threshold, as arrays."""

    answerable: np.ndarray
    flagged: np.ndarray
    confidence: np.ndarray
    right: np.ndarray
    raw: np.ndarray
    raw_flagged: np.ndarray
    raw_probability: np.ndarray

    @classmethod
    def of(cls, calibration: Calibration, tuning: Sequence[Observation], tested: Sequence[Observation]) -> Judged:
        """`tested` judged; the raw top-score threshold is chosen on `tuning` as the coverage
        threshold is (flagging FLAG_ANSWERABLE of its answerable questions), and the raw score
        scaled to [0, 1] by the range of the tuning questions' scores."""
        verdicts = [judge(o.evidence, calibration) for o in tested]
        raw = np.array([o.evidence.question[TOP_SCORE] for o in tested], dtype=np.float64)
        tuned = np.array([o.evidence.question[TOP_SCORE] for o in tuning if o.answerable], dtype=np.float64)
        cut = float(np.quantile(tuned, FLAG_ANSWERABLE)) if tuned.size else 0.0
        low, high = (float(tuned.min()), float(tuned.max())) if tuned.size else (0.0, 1.0)
        return cls(
            answerable=np.array([o.answerable for o in tested], dtype=bool),
            flagged=np.array([not v.covered for v in verdicts], dtype=bool),
            confidence=np.array([v.confidences[0] if v.confidences else 0.0 for v in verdicts]),
            right=np.array([o.top_right for o in tested], dtype=np.int64),
            raw=raw,
            raw_flagged=raw < cut,
            raw_probability=np.clip((raw - low) / max(high - low, 1e-9), 0.0, 1.0),
        )

    @classmethod
    def pooled(cls, parts: Sequence[Judged]) -> Judged:
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in cls.__dataclass_fields__))

    def measures(self) -> CoverageMeasures:
        a = self.answerable
        return CoverageMeasures(
            answerable=int(a.sum()),
            unanswerable=int((~a).sum()),
            unanswerable_flagged=_share(self.flagged[~a]),
            answerable_flagged=_share(self.flagged[a]),
            ece=expected_calibration_error(self.confidence, self.right),
            auroc=_auroc(self.confidence, self.right),
            raw_unanswerable_flagged=_share(self.raw_flagged[~a]),
            raw_answerable_flagged=_share(self.raw_flagged[a]),
            raw_ece=expected_calibration_error(self.raw_probability, self.right),
            raw_auroc=_auroc(self.raw, self.right),
        )


def _share(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


@dataclass(frozen=True)
class LeftOut:
    """One collection left out of fitting: the models fitted without it, and its held-out
    questions judged by them."""

    calibration: Calibration
    tested: tuple[Observation, ...]
    judged: Judged


def leave_one_out(observations: Sequence[Observation]) -> dict[str, LeftOut]:
    """Per collection: fitted on the tuning parts of the others, judged on its held-out part."""
    out = {}
    for name in dict.fromkeys(o.collection for o in observations):
        tuning = [o for o in observations if o.collection != name and o.split == DEV]
        tested = tuple(o for o in observations if o.collection == name and o.split == HELDOUT)
        calibration = fit(tuning)
        out[name] = LeftOut(calibration, tested, Judged.of(calibration, tuning, tested))
    return out
