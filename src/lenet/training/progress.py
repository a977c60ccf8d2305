"""What a person watching a run sees: a progress bar per epoch (when someone is watching) and
one line per finished epoch."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

from lenet.storage.history import EpochMetrics


def interactive() -> bool:
    """A person is watching: stderr is a terminal, or this runs in a Jupyter kernel."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def epoch_bar(total: int, desc: str, enabled: bool, initial: int = 0) -> tqdm | None:
    """The epoch's bar of steps on stderr, or None when nobody watches.

    tqdm.auto: a widget in Jupyter (where ipywidgets is installed), text in a terminal."""
    if not enabled:
        return None
    return tqdm(total=total, initial=initial, desc=desc, leave=False, unit="step",
                file=sys.stderr)


def epoch_line(m: EpochMetrics, epochs: int) -> str:
    val = ""
    if m.val_accuracy is not None:
        val = f" val_acc {m.val_accuracy:.4f}"
        val += f" val_loss {m.val_loss:.4f}" if m.val_loss is not None else ""
    return (f"epoch {m.epoch:>{len(str(epochs))}}/{epochs}  loss {m.train_loss:.4f}  "
            f"train_acc {m.train_accuracy:.4f}{val}  test_acc {m.test_accuracy:.4f}  "
            f"lr {m.lr:.3g}  {m.seconds:.2f}s  {m.images_per_s:,.0f} img/s")
