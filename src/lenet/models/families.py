"""Imports every model family so that each registers its models. One line per family file."""

import lenet.models.lenet5
import lenet.models.lenet1998
import lenet.models.mlp
import lenet.models.paper_nets  # noqa: F401
