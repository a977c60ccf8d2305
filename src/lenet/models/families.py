"""Imports every model family so that each registers its models. One line per family file."""

import lenet.models.lenet5
import lenet.models.mlp  # noqa: F401
