"""What lenet keeps on disk, and how it writes it: every write all-or-nothing
(:mod:`~lenet.storage.atomic`), one tensor-file format for weights and checkpoints
(:mod:`~lenet.storage.tensorfile`: safetensors + JSON metadata + SHA-256, never a pickle), the
run directory's files (:mod:`~lenet.storage.rundir`), training checkpoints
(:mod:`~lenet.storage.checkpoint`) and a run's metrics history with the one rule that picks its
best epoch (:mod:`~lenet.storage.history`). It knows no model: reading weights into one is
:mod:`lenet.models.weights`'."""
