"""Classification metrics from labels and predictions: confusion matrix, per-class scores."""

from __future__ import annotations

from typing import Any

import torch


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor,
                     num_classes: int) -> torch.Tensor:
    """(C, C) int64 counts; row = true class, column = predicted class."""
    idx = labels.long().cpu() * num_classes + predictions.long().cpu()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes,
                                                                            num_classes)


def per_class(cm: torch.Tensor, classes: list[str]) -> list[dict[str, Any]]:
    """Precision, recall and F1 of each class (0.0 where undefined, as scikit-learn does)."""
    cm = cm.double()
    tp = cm.diag()
    predicted = cm.sum(0)
    support = cm.sum(1)
    rows = []
    for i, name in enumerate(classes):
        p = float(tp[i] / predicted[i]) if predicted[i] > 0 else 0.0
        r = float(tp[i] / support[i]) if support[i] > 0 else 0.0
        f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
        rows.append({"class": name, "precision": p, "recall": r, "f1": f1,
                     "support": int(support[i])})
    return rows


def macro_average(rows: list[dict[str, Any]]) -> dict[str, float]:
    n = max(len(rows), 1)
    return {k: sum(r[k] for r in rows) / n for k in ("precision", "recall", "f1")}


def top_confusions(cm: torch.Tensor, classes: list[str], k: int = 10) -> list[dict[str, Any]]:
    """The k most frequent (true, predicted) mistakes, most frequent first."""
    off = cm.clone()
    off.fill_diagonal_(0)
    flat = off.flatten()
    order = torch.argsort(flat, descending=True, stable=True)
    n = cm.shape[0]
    out = []
    for j in order[:k].tolist():
        count = int(flat[j])
        if count == 0:
            break
        t, p = divmod(j, n)
        out.append({"true": classes[t], "predicted": classes[p], "count": count})
    return out


def classification_report(labels: torch.Tensor, predictions: torch.Tensor,
                          classes: list[str], top: int = 10
                          ) -> tuple[torch.Tensor, dict[str, Any]]:
    """The confusion matrix, and what ``lenet evaluate`` and ``lenet report`` say about it as
    JSON: ``per_class``, ``macro_avg``, ``confusion_matrix`` and the `top` ``top_confusions``."""
    cm = confusion_matrix(labels, predictions, len(classes))
    rows = per_class(cm, classes)
    return cm, {"per_class": rows, "macro_avg": macro_average(rows),
                "confusion_matrix": cm.tolist(), "top_confusions": top_confusions(cm, classes, top)}


def misclassified(labels: torch.Tensor, predictions: torch.Tensor, confidence: torch.Tensor,
                  classes: list[str]) -> list[dict[str, Any]]:
    """Every wrong prediction, in test-set order."""
    wrong = (labels != predictions).nonzero().flatten().tolist()
    return [{"index": i, "true": classes[int(labels[i])],
             "predicted": classes[int(predictions[i])],
             "confidence": round(float(confidence[i]), 4)} for i in wrong]


def format_confusion(cm: torch.Tensor, classes: list[str]) -> str:
    """The matrix as aligned text: rows are true classes, columns predicted ones."""
    short = [c[:6] for c in classes]
    width = max(6, max(len(str(int(cm.max()))), max(map(len, short))) + 1)
    lines = ["true \\ pred".ljust(12) + "".join(s.rjust(width) for s in short)]
    for name, row in zip(short, cm.tolist(), strict=True):
        lines.append(name.ljust(12) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)
