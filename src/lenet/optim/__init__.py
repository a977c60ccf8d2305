"""Optimizers the 1998 paper uses that PyTorch does not ship."""

from lenet.optim.sdlm import SDLM, gauss_newton_diagonal

__all__ = ["SDLM", "gauss_newton_diagonal"]
