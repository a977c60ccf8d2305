"""Bundled weights: publish a run's weights into the package, and check the ones there.

``make weights`` trains each shipped recipe with its seed and publishes the result here; the
manifest (:mod:`lenet.models.hub`) then records how it was made and what it measures. The
accuracy recorded is measured again at publication, on the whole test set of the weights' own
dataset, by the same code as `lenet evaluate`: never copied from the training log.

>>> entry = publish("runs/weights/lenet5", "lenet5")
>>> verify()   # every bundled entry: SHA-256 and test accuracy measured again
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lenet.analysis import evaluate
from lenet.errors import ConfigError, WeightsError
from lenet.models import hub, weights
from lenet.runtime.cpu import cpu_isa, cpu_name
from lenet.storage import atomic, rundir, tensorfile

MAX_BYTES = 300_000  # a bundled file must keep the wheel small (issue #16: <= 300 KB each)
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def _check_name(name: str) -> None:
    if not name or not set(name) <= NAME_CHARS or name.startswith("."):
        raise ConfigError(f"weights name {name!r}: use lowercase letters, digits, '-', '_' and "
                          "'.' (e.g. lenet5-1998)")


def machine() -> str:
    """The CPU model and its vector extensions, for the record (speed and bits depend on it)."""
    return f"{cpu_name()} ({cpu_isa()})"


def publish(run: str | os.PathLike[str], name: str, dest: str | os.PathLike[str] | None = None,
            *, recipe: str | None = None, device: str = "cpu",
            log: Callable[[str], None] = print, reject_margin: float | None = None
            ) -> dict[str, Any]:
    """Copy `run`'s weights into `dest` (default: the package's bundled weights) as `name`,
    with the accuracy measured again on the whole test set; returns the manifest entry.
    `recipe` names the shipped recipe that trained it (default: the model's name);
    `reject_margin`, chosen on held-out training digits, is written into the file's metadata
    (:mod:`lenet.training.reject`)."""
    _check_name(name)
    dest = Path(dest) if dest is not None else hub.PRETRAINED_DIR
    atomic.ensure_writable_dir(dest, fix="pass --dest DIR, a folder you can write")
    source = weights.resolve_path(run)
    data = tensorfile.read_bytes(source, what="weights file")  # refused by size first
    if len(data) > MAX_BYTES:
        raise WeightsError(f"{source}: {len(data):,} bytes; bundled weights must be at most "
                           f"{MAX_BYTES:,} (publish a smaller model)")
    loaded = evaluate.load(source, device)
    if reject_margin is not None:  # the same tensors, the margin added to their metadata
        loaded.meta.reject_margin = reject_margin
        data = tensorfile.encode(weights.read(source)[0], tensorfile.METADATA_KEY,
                                 loaded.meta.to_dict())
    log(f"measuring {name} ({loaded.meta.model}) on the whole {loaded.meta.dataset} test set")
    ev = evaluate.evaluate_detailed(loaded, test_subset=0)
    measured = dict(ev.summary)
    # Also the first 1,000 test digits, from the same pass: a check anyone repeats in a second.
    right = ev.predictions[:1000] == ev.labels[:1000]
    measured["first_1000"] = right.double().mean().item()
    config = rundir.read_config(source.parent) if source.name == rundir.WEIGHTS else {}
    published = hub.Weights.publication(
        name, loaded.meta, data, recipe=recipe or loaded.meta.model, config=config,
        measured=measured, machine=machine())
    entry = published.meta
    atomic.write_bytes(dest / published.file, data)
    entries = hub.manifest(dest)
    entries[name] = entry
    hub.write_manifest(dest, entries)
    log(f"published {name}: test accuracy {entry['test_accuracy']:.4f} "
        f"({entry['test_errors']} errors of {entry['test_digits']}), {len(data):,} bytes, "
        f"sha256 {entry['sha256'][:16]}... in {dest}")
    return entry


def verify(names: list[str] | None = None, *, device: str = "cpu",
           log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Each bundled entry read (manifest SHA-256, digest, fit) and its test accuracy measured
    again beside the recorded one."""
    rows = []
    for name in names or hub.list_pretrained():
        w = hub.get_weights(name)
        w.read()  # the SHA-256 against the manifest, the digest, the fit
        measured = evaluate.evaluate_loaded(evaluate.load(w.path, device))
        rows.append({"name": name, "recorded": w.test_accuracy,
                     "measured": measured["accuracy"], "errors": measured["errors"],
                     "total": measured["total"], "sha256": w.sha256})
        log(f"{name}: recorded {w.test_accuracy:.4f}, measured {measured['accuracy']:.4f}")
    return rows
