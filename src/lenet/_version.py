"""The version, in a leaf of its own: modules read it here, not from the package root (whose
lazy API names every layer)."""

__version__ = "0.1.0"
