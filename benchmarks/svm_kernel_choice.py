"""How lenet.classic.svm's kernel and C were chosen: on a validation split of the TRAINING
digits (fit on training digits 0..2,999, score training digits 50,000..52,999), never on the
test set. About a minute on one core:

    OMP_NUM_THREADS=1 python -m benchmarks.svm_kernel_choice
"""

from __future__ import annotations

import time
from pathlib import Path


def main() -> None:
    from sklearn.svm import SVC

    from lenet.classic.base import Context
    from lenet.classic.data import digits

    x, y = digits(Context(out=Path(".")), "train", deslant=True, subset=53_000)
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


if __name__ == "__main__":
    main()
