"""Datasets: IDX reading, verified fetching from mirrors or registries, fast loading.

>>> images, labels = load("mnist", "train")   # uint8 (60000, 28, 28), int64 (60000,)
"""

from lenet.data.datasets import DATASETS, default_data_dir, fetch, info, load
from lenet.data.idx import read_idx
from lenet.errors import DatasetError

__all__ = ["DATASETS", "DatasetError", "default_data_dir", "fetch", "info", "load", "read_idx"]
