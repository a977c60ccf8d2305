"""LeNet-5 and its relatives, by name: ``lenet.models.create("lenet5")``."""

from lenet.models.registry import ModelSpec, count_parameters, create, get_spec, names, register

__all__ = ["ModelSpec", "count_parameters", "create", "get_spec", "names", "register"]
