"""lenet: LeNet-5, faithful and fast, as real software.

The top-level import stays light (no torch): ``import lenet`` only exposes the version and the
error types, so ``lenet --help`` answers instantly.
"""

from lenet.errors import ConfigError, DatasetError, LenetError, WeightsError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DatasetError", "LenetError", "WeightsError", "__version__"]
