"""What every classical row shares: its settings, its outcome and the registry of rows.

A row's module calls :func:`register` at import; :data:`_MODULES` lists those modules so the
registry fills on first use without importing scikit-learn for ``lenet --help``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lenet import console
from lenet.errors import ConfigError


@dataclass(frozen=True)
class Context:
    """Where and how to run one row once."""

    out: Path  # this row's folder for anything it keeps (trained nets, fitted models)
    seed: int = 0
    train_subset: int | None = None  # None: the row's own default (all, or its documented subset)
    test_subset: int | None = None  # None: all 10,000
    epochs: int | None = None  # neural parts: override the recipe's passes
    device: str = "cpu"
    data_dir: str | None = None
    log: console.Log = console.log
    # A folder the rows of one table share (the LeNet-4 that two hybrid rows read); None: `out`.
    shared: Path | None = None


@dataclass
class Outcome:
    """One row's result on the test set."""

    scores: torch.Tensor  # (N_test, 10) float; larger = more likely; the answer is the argmax
    labels: torch.Tensor  # (N_test,) int64
    macs: int  # multiply-accumulate operations to recognise one digit
    memory: int  # numbers stored to recognise (parameters or prototypes)
    train_seconds: float
    test_seconds: float  # for all N_test digits
    train_digits: int  # how many training digits were used
    notes: str = ""  # the choices the paper leaves open, as the table's footnote
    extra: dict = field(default_factory=dict)

    @property
    def error(self) -> float:
        """Test error in percent."""
        wrong = (self.scores.argmax(1) != self.labels).sum().item()
        return 100.0 * wrong / len(self.labels)


@dataclass(frozen=True)
class Method:
    name: str  # what `lenet paper --only` selects
    method: str  # as the paper's Fig. 9 names it
    paper_error: float  # percent
    fit_score: Callable[[Context], Outcome]
    default_train_subset: int | None = None  # expensive rows: the subset used unless told
    needs_sklearn: bool = False


_MODULES = tuple(f"lenet.paper.classic.{m}" for m in (
    "linear",  # linear and pairwise linear, deslanted
    "neighbors",  # k-NN raw and deslanted, tangent distance
    "pca",  # 40 PCA + quadratic
    "rbf",  # 1000 RBF + linear
    "deslant_mlp",  # 20x20 deslanted 300-10 net
    "svm",  # SVM poly 4, reduced-set SVM poly 5, virtual SVM poly 9
    "hybrids",  # LeNet-4 + k-NN, LeNet-4 + local learning, boosted LeNet-4
))
_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in _REGISTRY:
        raise ValueError(f"classical row {method.name!r} registered twice")
    _REGISTRY[method.name] = method
    return method


def _load() -> dict[str, Method]:
    for module in _MODULES:
        importlib.import_module(module)
    return _REGISTRY


def names() -> list[str]:
    return list(_load())


def get(name: str) -> Method:
    methods = _load()
    if name not in methods:
        raise ConfigError(f"unknown classical row {name!r}; rows: {', '.join(methods)}")
    return methods[name]


def run(name: str, ctx: Context) -> Outcome:
    method = get(name)
    if method.needs_sklearn:
        try:
            import sklearn  # noqa: F401, PLC0415  (extra: classic)
        except ImportError:
            raise ConfigError(f"row {name} needs scikit-learn; "
                              "install it with `pip install 'lenet[classic]'`") from None
    return method.fit_score(ctx)
