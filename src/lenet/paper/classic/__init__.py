"""The 1998 paper's other rows (Fig. 9): classical methods and hybrids, beside the nets.

Each method is a :class:`~lenet.paper.classic.base.Method` registered under the name that
``lenet paper --only`` selects. ``run(name, ctx)`` fits it on the training digits and scores
the test digits; the :class:`~lenet.paper.classic.base.Outcome` carries the scores (for the error
and the rejection of Fig. 10), the cost per digit (Figs. 11–12) and the choices the paper
leaves open. scikit-learn (the ``classic`` extra) is imported only by the rows that use it.
"""

from __future__ import annotations

from lenet.paper.classic.base import Context, Method, Outcome, get, names, register, run

__all__ = ["Context", "Method", "Outcome", "get", "names", "register", "run"]
