"""How lenet.paper.classic's open choices were made: on a validation split of the TRAINING digits
(score training digits 50,000..52,999; fit on digits 0..2,999 for the SVMs, 0..49,999 for the
pairwise units), never on the test set. About two minutes on one core:

    OMP_NUM_THREADS=1 python -m benchmarks.classic_choices

1. the SVMs' kernel and C (lenet.paper.classic.svm);
2. the one-vs-one rows' scores for rejection: votes plus a tie-break, or each class's weakest
   duel (lenet.paper.classic.linear.duel_scores).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch


def main() -> None:
    from lenet.paper.classic.base import Context
    from lenet.paper.classic.data import digits

    x, y = digits(Context(out=Path(".")), "train", deslant=True, subset=53_000)
    kernels(x, y)
    rejection_scores(x, y)


def kernels(x: torch.Tensor, y: torch.Tensor) -> None:
    from sklearn.svm import SVC

    fit_x, fit_y = x[:3000].double().numpy(), y[:3000].numpy()
    val_x, val_y = x[50_000:].double().numpy(), y[50_000:].numpy()
    m = (x[:3000].double() ** 2).sum(1).mean().item()  # mean |x|^2
    for d in (4, 5, 9):
        for name, gamma, coef0 in (("lenet: (1 + 4/(d m) x.y)^d", 4 / (d * m), 1.0),
                                   ("(1 + x.y / m)^d", 1 / m, 1.0),
                                   ("homogeneous (x.y / m)^d", 1 / m, 0.0),
                                   ("scikit-learn gamma='scale', coef0 0", "scale", 0.0)):
            for c in (1.0, 10.0, 100.0):
                t0 = time.perf_counter()
                svc = SVC(kernel="poly", degree=d, gamma=gamma, coef0=coef0, C=c)
                err = 100 * (svc.fit(fit_x, fit_y).predict(val_x) != val_y).mean()
                print(f"d={d} {name:38s} C={c:<4g} validation error {err:5.2f} %  "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)


def rejection_scores(x: torch.Tensor, y: torch.Tensor) -> None:
    from lenet.analysis.evaluate import rejection_at
    from lenet.paper.classic import linear, svm

    val_x, val_y = x[50_000:], y[50_000:]
    kernel = svm.PolyKernel.for_data(x[:3000], 4)
    machines = svm.Machines.from_svc(svm.fit_svc(x[:3000], y[:3000], kernel, 0), kernel)
    dec = machines.decisions(val_x)
    units = linear.pairwise_fit(linear.augment(x[:50_000]), y[:50_000])
    val_aug = linear.augment(val_x)
    for row, votes, duel in (
            ("SVM poly 4, 3,000 digits", svm.ovr_scores(dec), linear.duel_scores(dec)),
            ("pairwise linear, 50,000", linear.pairwise_scores(val_aug, units),
             linear.duel_scores(val_aug @ units.T))):
        for name, scores in (("votes + tie-break", votes), ("weakest duel", duel)):
            err = 100 * (scores.argmax(1) != val_y).float().mean().item()
            rej = rejection_at(scores, val_y, 0.5)
            print(f"{row:26s} {name:18s} validation error {err:5.2f} %, rejected for 0.5 %: "
                  f"{rej if rej is None else f'{rej:.1f} %'}", flush=True)


if __name__ == "__main__":
    main()
