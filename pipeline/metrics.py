"""Evaluation metrics, implemented once: accuracy for single-label tasks (Speech Commands)
and macro mAP for multi-label ones (FSD50K), with no sklearn dependency."""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _as_numpy(x: ArrayLike) -> np.ndarray:
    """Tensors (any device, bf16 included) or arrays -> numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.to(torch.float64)
        return x.numpy()
    return np.asarray(x)


def _check_scores(scores: np.ndarray) -> None:
    if scores.ndim != 2 or scores.shape[0] == 0:
        raise ValueError(f"scores must be [N, C] with N > 0, got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")


def accuracy(scores: ArrayLike, targets: ArrayLike) -> float:
    """Share of rows whose argmax (first index on ties) equals the integer label."""
    s, t = _as_numpy(scores), _as_numpy(targets)
    _check_scores(s)
    if t.shape != (s.shape[0],) or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"targets must be integer labels of shape ({s.shape[0]},), got {t.shape}")
    return float((s.argmax(axis=1) == t).mean())


def _average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """AP of one class: mean over its positives of the precision at that positive's score.

    Ties are resolved as one group, independent of row order: a positive scored s gets
    precision = #(positives scored >= s) / #(items scored >= s). This is the
    step-function AP of sklearn's ``average_precision_score``, which FSD50K's baselines
    use; without ties it is the usual precision at each positive's rank.
    """
    ranked_all = np.sort(scores)
    ranked_pos = np.sort(scores[positive])
    n_at_or_above = len(ranked_all) - np.searchsorted(ranked_all, ranked_pos, side="left")
    tp_at_or_above = len(ranked_pos) - np.searchsorted(ranked_pos, ranked_pos, side="left")
    return float(np.mean(tp_at_or_above / n_at_or_above))


def mean_average_precision(scores: ArrayLike, targets: ArrayLike) -> float:
    """Macro mAP as FSD50K reports it: per-class AP averaged over the classes that have at
    least one positive (AP is undefined without positives, so those are skipped).

    ``scores`` and multi-hot ``targets`` are ``[N, C]``; see ``_average_precision`` for
    how tied scores are ranked.
    """
    s, t = _as_numpy(scores), _as_numpy(targets)
    _check_scores(s)
    if t.shape != s.shape:
        raise ValueError(f"targets must match scores {s.shape}, got {t.shape}")
    if not np.isin(t, (0, 1)).all():
        raise ValueError("multi-label targets must be 0/1")
    positive = t.astype(bool)
    aps = [
        _average_precision(s[:, c], positive[:, c])
        for c in range(s.shape[1])
        if positive[:, c].any()
    ]
    if not aps:
        raise ValueError("no class has a positive target; mAP is undefined")
    return float(np.mean(aps))


def classification_metric(
    scores: ArrayLike, targets: ArrayLike, multi_label: bool
) -> tuple[str, float]:
    """The task's headline metric and its name: ``("mAP", x)`` or ``("accuracy", x)``."""
    if multi_label:
        return "mAP", mean_average_precision(scores, targets)
    return "accuracy", accuracy(scores, targets)
