"""What a person watching a run sees: a progress bar per epoch (when someone is watching) and
one line per finished epoch."""

from __future__ import annotations

import sys
from importlib.util import find_spec

from tqdm import tqdm as text_bar

from lenet import console
from lenet.storage.history import EpochMetrics


def bar_class() -> type[text_bar]:
    """tqdm.auto's bar (a widget in Jupyter) where ipywidgets is installed; else tqdm's text
    bar: tqdm.auto without ipywidgets warns (TqdmWarning) in every notebook cell that trains."""
    if find_spec("ipywidgets") is None:
        return text_bar
    from tqdm.auto import tqdm as auto_bar  # noqa: PLC0415  (only with ipywidgets installed)

    return auto_bar


def interactive() -> bool:
    """A person is watching: stderr is a terminal, or this runs in a Jupyter kernel; and it is
    not a `lenet -q` command."""
    return (sys.stderr.isatty() or "ipykernel" in sys.modules) and not console.quiet()


def epoch_bar(total: int, desc: str, enabled: bool, initial: int = 0) -> text_bar | None:
    """The epoch's bar of steps on stderr, or None when nobody watches (:func:`bar_class`: a
    widget in Jupyter where ipywidgets is installed, else text)."""
    if not enabled:
        return None
    return bar_class()(total=total, initial=initial, desc=desc, leave=False, unit="step",
                       file=sys.stderr)


def epoch_line(m: EpochMetrics, epochs: int) -> str:
    val = ""
    if m.val_accuracy is not None:
        val = f" val_acc {m.val_accuracy:.4f}"
        val += f" val_loss {m.val_loss:.4f}" if m.val_loss is not None else ""
    return (f"epoch {m.epoch:>{len(str(epochs))}}/{epochs}  loss {m.train_loss:.4f}  "
            f"train_acc {m.train_accuracy:.4f}{val}  test_acc {m.test_accuracy:.4f}  "
            f"lr {m.lr:.3g}  {m.seconds:.2f}s  {m.images_per_s:,.0f} img/s")
