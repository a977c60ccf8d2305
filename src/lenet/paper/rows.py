"""The rows of the paper's Fig. 9 that lenet trains (:data:`ROWS`), the table's order, and
``lenet paper --list``. No torch here: ``lenet paper --help`` names the rows.

The classical rows come from :mod:`lenet.paper.classic` (:func:`lenet.paper.runner.all_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    name: str  # what --only selects
    method: str  # as the paper's Fig. 9 names it
    recipe: str  # a neural row's shipped recipe; "" for a classical row
    paper_error: float  # percent
    distort: bool = False
    train_error: bool = False  # report the training error after pass 19 instead of test error
    classical: bool = False  # a lenet.paper.classic row, fitted in this process
    default_train_subset: int | None = None  # a classical row's own subset unless told


ROWS: tuple[Row, ...] = (
    Row("linear", "linear classifier", "linear", 12.0),
    Row("mlp-300", "28x28-300-10", "mlp-300", 4.7),
    Row("mlp-300-distort", "28x28-300-10 [distortions]", "mlp-300", 3.6, distort=True),
    Row("mlp-1000", "28x28-1000-10", "mlp-1000", 4.5),
    Row("mlp-1000-distort", "28x28-1000-10 [distortions]", "mlp-1000", 3.8, distort=True),
    Row("mlp-300-100", "28x28-300-100-10", "mlp-300-100", 3.05),
    Row("mlp-300-100-distort", "28x28-300-100-10 [distortions]", "mlp-300-100", 2.5,
        distort=True),
    Row("mlp-500-150", "28x28-500-150-10", "mlp-500-150", 2.95),
    Row("mlp-500-150-distort", "28x28-500-150-10 [distortions]", "mlp-500-150", 2.45,
        distort=True),
    Row("lenet1", "LeNet-1 [16x16]", "lenet1", 1.7),
    Row("lenet4", "LeNet-4", "lenet4", 1.1),
    Row("lenet5", "LeNet-5", "lenet5-1998", 0.95),
    Row("lenet5-train", "LeNet-5 training error, pass 19", "lenet5-1998", 0.35,
        train_error=True),
    Row("lenet5-distort", "LeNet-5 [distortions]", "lenet5-1998-distort", 0.8, distort=True),
)

# The order of the paper's Fig. 9; rows not named here (new classical rows) come last.
FIG9_ORDER = (
    "linear", "linear-deslant", "pairwise-deslant", "knn", "knn-deslant", "pca-quadratic",
    "rbf", "tangent-distance", "svm-poly4", "svm-reduced-poly5", "vsvm-poly9",
    "mlp-300", "mlp-300-distort", "mlp-300-deslant", "mlp-1000", "mlp-1000-distort",
    "mlp-300-100", "mlp-300-100-distort", "mlp-500-150", "mlp-500-150-distort",
    "lenet1", "lenet4", "lenet4-local", "lenet4-knn", "lenet5", "lenet5-train",
    "lenet5-distort", "boosted-lenet4",
)


def format_list(rows: list[Row]) -> str:
    """``lenet paper --list``: every row's name, kind, the paper's error and its method."""
    lines = [f"{'row':<22}{'kind':<11}{'paper %':>8}  method"]
    for r in rows:
        kind = "classical" if r.classical else "neural"
        subset = (f" (default: {r.default_train_subset:,} training digits)"
                  if r.default_train_subset else "")
        lines.append(f"{r.name:<22}{kind:<11}{r.paper_error:>8g}  {r.method}{subset}")
    return "\n".join(lines)
