"""Fetching: verification and its cache, HTTP mirrors on a local server, tarballs, fallbacks.

Everything runs against 127.0.0.1 and temp dirs with small synthetic IDX files; nothing here
touches the internet or a package registry (their sources: tests/data/test_registries.py).
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lenet.data import sources
from lenet.data.sources import (
    DirectorySource,
    FileSpec,
    MirrorSource,
    SourceFailed,
    fetch_files,
    file_status,
    install_file,
)
from lenet.errors import DatasetError


# --------------------------------------------------------------------------- helpers
def idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def synthetic_files(n: int = 20, seed: int = 0) -> dict[str, bytes]:
    """A tiny MNIST-shaped dataset: file name -> uncompressed IDX bytes."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": idx(rng.integers(0, 256, (n, 28, 28))),
        "train-labels-idx1-ubyte": idx(rng.integers(0, 10, n)),
        "t10k-images-idx3-ubyte": idx(rng.integers(0, 256, (n // 2, 28, 28))),
        "t10k-labels-idx1-ubyte": idx(rng.integers(0, 10, n // 2)),
    }


def specs_for(files: dict[str, bytes]) -> tuple[FileSpec, ...]:
    return tuple(FileSpec(name, hashlib.sha256(data).hexdigest(), len(data))
                 for name, data in files.items())


class Server:
    """A local HTTP server for ``routes`` (path -> body), recording the paths requested."""

    def __init__(self, routes: dict[str, bytes]) -> None:
        self.routes = routes
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                body = outer.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def gz_routes(files: dict[str, bytes], prefix: str = "/mnist/") -> dict[str, bytes]:
    return {f"{prefix}{name}.gz": gzip.compress(data) for name, data in files.items()}


@pytest.fixture
def files() -> dict[str, bytes]:
    return synthetic_files()


@pytest.fixture
def server(files: dict[str, bytes]) -> Iterator[Server]:
    s = Server(gz_routes(files))
    yield s
    s.close()


@pytest.fixture
def hanging_url() -> Iterator[str]:
    """A port that accepts connections (the kernel does the handshake) but never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/mnist/"
    sock.close()


def refused_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connecting is refused at once
    return f"http://127.0.0.1:{port}/mnist/"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- verification
def big_file(tmp_path: Path) -> tuple[Path, FileSpec]:
    """A file large enough that its marker is trusted (label files are always hashed)."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, sources.ALWAYS_HASH_BELOW + 16, dtype=np.uint8).tobytes()
    spec = FileSpec("train-images-idx3-ubyte", hashlib.sha256(data).hexdigest(), len(data))
    path = tmp_path / spec.name
    path.write_bytes(data)
    return path, spec


def edit_in_place(path: Path, offset: int = 100) -> None:
    """Change one byte, keeping size and mtime (as `touch -r` would put it back)."""
    st = path.stat()
    time.sleep(0.03)  # past the kernel's coarse clock tick, as any real later edit is
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([old ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def forge_marker(path: Path, spec: FileSpec) -> None:
    """A marker matching the file's current stats, as if written after an edit."""
    st = path.stat()
    marker = path.with_name(path.name + ".sha256")
    marker.write_text(f"{spec.sha256} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}\n")


def count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    hashed: list[Path] = []
    real = sources.sha256_file

    def spy(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(sources, "sha256_file", spy)
    return hashed


def test_file_status_and_marker_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, spec = big_file(tmp_path)
    assert file_status(tmp_path / "absent", spec) == "missing"
    assert file_status(path, spec) == "ok"
    st = path.stat()
    marker = tmp_path / (spec.name + ".sha256")
    assert marker.read_text().split() == [spec.sha256, str(st.st_size), str(st.st_mtime_ns),
                                          str(st.st_ctime_ns)]
    hashed = count_hashes(monkeypatch)
    assert file_status(path, spec) == "ok" and hashed == []  # the marker is trusted
    assert file_status(path, spec, verify="full") == "ok" and hashed == [path]

    # Any change of mtime invalidates the marker.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert file_status(path, spec) == "ok" and hashed == [path, path]


def test_an_in_place_edit_keeping_size_and_mtime_is_caught_by_ctime(tmp_path: Path) -> None:
    path, spec = big_file(tmp_path)
    assert file_status(path, spec) == "ok"
    edit_in_place(path)
    assert file_status(path, spec) == "mismatch"


def test_full_verify_ignores_even_a_matching_marker(tmp_path: Path) -> None:
    path, spec = big_file(tmp_path)
    edit_in_place(path)
    forge_marker(path, spec)
    assert file_status(path, spec) == "ok"  # what the cache is for: it trusts the marker
    assert file_status(path, spec, verify="full") == "mismatch"


def test_small_files_are_hashed_every_time(tmp_path: Path, files: dict[str, bytes]) -> None:
    spec = specs_for(files)[1]  # a labels file
    path = tmp_path / spec.name
    path.write_bytes(files[spec.name])
    assert file_status(path, spec) == "ok"
    edit_in_place(path, offset=9)
    forge_marker(path, spec)
    assert file_status(path, spec) == "mismatch"


def test_a_marker_without_ctime_means_one_rehash(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Markers of an older lenet held size and mtime only: hash once, then trust the new one."""
    path, spec = big_file(tmp_path)
    st = path.stat()
    marker = tmp_path / (spec.name + ".sha256")
    marker.write_text(f"{spec.sha256} {st.st_size} {st.st_mtime_ns}\n")
    hashed = count_hashes(monkeypatch)
    assert file_status(path, spec) == "ok" and hashed == [path]
    assert len(marker.read_text().split()) == 4
    assert file_status(path, spec) == "ok" and hashed == [path]


def test_an_unreadable_path_is_one_line_naming_the_fix(tmp_path: Path,
                                                       files: dict[str, bytes]) -> None:
    spec = specs_for(files)[1]
    loop = tmp_path / spec.name
    loop.symlink_to(loop)
    with pytest.raises(DatasetError) as e:
        file_status(loop, spec, fix="delete it and run `lenet data fetch toy`")
    msg = str(e.value)
    assert msg.startswith(f"{loop}: cannot read it (") and "\n" not in msg
    assert msg.endswith("; delete it and run `lenet data fetch toy`")


def test_wrong_size_is_a_mismatch_without_hashing(tmp_path: Path, files: dict[str, bytes],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    spec = specs_for(files)[0]
    (tmp_path / spec.name).write_bytes(b"short")
    monkeypatch.setattr(sources, "sha256_file", lambda p: pytest.fail("hashed"))
    assert file_status(tmp_path / spec.name, spec) == "mismatch"


def test_garbage_marker_means_rehash(tmp_path: Path, files: dict[str, bytes]) -> None:
    spec = specs_for(files)[1]
    (tmp_path / spec.name).write_bytes(files[spec.name])
    (tmp_path / (spec.name + ".sha256")).write_text("not a marker")
    assert file_status(tmp_path / spec.name, spec) == "ok"


# --------------------------------------------------------------------------- HTTP mirrors
def test_download_from_local_mirror(tmp_path: Path, files: dict[str, bytes],
                                    server: Server) -> None:
    target = tmp_path / "mnist"
    specs = specs_for(files)
    got = fetch_files(specs, target, [MirrorSource(server.url + "/mnist/", timeout=5)],
                      dataset="test", progress=True)
    assert got == target
    for name, data in files.items():
        assert (target / name).read_bytes() == data
        assert (target / (name + ".sha256")).exists()
    assert leftovers(target) == []
    # A second fetch is served from the data dir alone.
    server.requests.clear()
    fetch_files(specs, target, [MirrorSource(server.url + "/mnist/")], dataset="test")
    assert server.requests == []


def test_corrupt_download_is_rejected_and_cleaned_up(tmp_path: Path, files: dict[str, bytes],
                                                     server: Server) -> None:
    name = "train-labels-idx1-ubyte"
    bad = bytearray(files[name])
    bad[20] ^= 0xFF
    server.routes[f"/mnist/{name}.gz"] = gzip.compress(bytes(bad))
    target = tmp_path / "mnist"
    with pytest.raises(DatasetError) as e:
        fetch_files(specs_for(files), target, [MirrorSource(server.url + "/mnist/", timeout=5)],
                    dataset="test")
    assert f"{name} from {server.url}/mnist/{name}.gz is corrupt" in str(e.value)
    assert not (target / name).exists()
    assert leftovers(target) == []
    # The mirror was reachable, so its other files were still taken.
    assert (target / "train-images-idx3-ubyte").exists()


def test_not_gzip_and_oversized_downloads_are_rejected(tmp_path: Path, files: dict[str, bytes],
                                                       server: Server) -> None:
    server.routes["/mnist/train-labels-idx1-ubyte.gz"] = b"this is not gzip"
    server.routes["/mnist/t10k-labels-idx1-ubyte.gz"] = gzip.compress(bytes(10**6))
    target = tmp_path / "mnist"
    with pytest.raises(DatasetError) as e:
        fetch_files(specs_for(files), target, [MirrorSource(server.url + "/mnist/")],
                    dataset="test")
    assert "not valid gzip" in str(e.value)
    assert "larger than" in str(e.value)
    assert leftovers(target) == []


def test_hanging_server_is_bounded_by_the_timeout(tmp_path: Path, files: dict[str, bytes],
                                                  hanging_url: str) -> None:
    start = time.monotonic()
    with pytest.raises(DatasetError) as e:
        fetch_files(specs_for(files), tmp_path, [MirrorSource(hanging_url, timeout=1)],
                    dataset="test")
    # One timeout, not one per file: the mirror is dropped after its first network failure.
    assert time.monotonic() - start < 3
    assert "timed out" in str(e.value)
    assert leftovers(tmp_path) == []


class TrickleServer(Server):
    """Serves ``routes`` one byte every 0.1 s (headers at once, with the true length)."""

    def __init__(self, routes: dict[str, bytes]) -> None:
        super().__init__(routes)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = outer.routes.get(self.path, b"")
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for i in range(min(len(body), 100)):  # 10 s at most, whatever the client does
                    try:
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                    except OSError:  # the client gave up: so do we
                        return
                    time.sleep(0.1)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd.RequestHandlerClass = Handler


def test_a_trickling_mirror_is_abandoned_at_the_minimum_rate(tmp_path: Path,
                                                             files: dict[str, bytes]) -> None:
    """Each read comes well within the socket timeout, so only the pace can stop it: after
    its 0.5 s of grace, 10 bytes a second is below the 1 kB/s asked for."""
    trickle = TrickleServer(gz_routes(files))
    try:
        mirror = MirrorSource(trickle.url + "/mnist/", timeout=5,
                              pace=sources.Pace(grace=0.5, min_rate=1000))
        t0 = time.monotonic()
        with pytest.raises(DatasetError) as e:
            fetch_files(specs_for(files)[:1], tmp_path / "mnist", [mirror], dataset="test")
        elapsed = time.monotonic() - t0
    finally:
        trickle.close()
    assert elapsed < 3, elapsed
    assert "too slow" in str(e.value) and "least is 1 kB/s" in str(e.value)
    assert leftovers(tmp_path / "mnist") == []


def test_the_pace_bounds_the_whole_download_by_size() -> None:
    pace = sources.Pace(grace=30, min_rate=50_000)
    assert pace.deadline(47_040_016) == pytest.approx(30 + 940.8)
    pace.check(received=10, elapsed=29, size=1000, url="u")  # within the grace: anything goes
    pace.check(received=2_000_000, elapsed=35, size=10**8, url="u")  # 57 kB/s: fine
    with pytest.raises(SourceFailed, match="10 bytes in 31s"):
        pace.check(received=10, elapsed=31, size=10**8, url="u")
    # Fast enough on average, but past the deadline for its size (a server that pads forever).
    with pytest.raises(SourceFailed, match="not complete after 51s"):
        pace.check(received=10**8, elapsed=51, size=1_000_000, url="u")


def test_falls_through_to_the_next_mirror(tmp_path: Path, files: dict[str, bytes],
                                          server: Server, hanging_url: str) -> None:
    mirrors = [MirrorSource(refused_url(), 1), MirrorSource(hanging_url, 0.5),
               MirrorSource(server.url + "/missing/", 1), MirrorSource(server.url + "/mnist/", 1)]
    fetch_files(specs_for(files), tmp_path, mirrors, dataset="test")
    assert sorted(p.name for p in tmp_path.iterdir() if "sha256" not in p.name) == sorted(files)


def test_corrupt_cached_file_is_replaced_from_the_next_source(
        tmp_path: Path, files: dict[str, bytes], server: Server) -> None:
    target = tmp_path / "mnist"
    target.mkdir()
    for name, data in files.items():
        (target / name).write_bytes(data)
    victim = target / "t10k-images-idx3-ubyte"
    victim.write_bytes(bytes(len(files[victim.name])))  # right size, wrong bytes
    fetch_files(specs_for(files), target, [MirrorSource(server.url + "/mnist/")],
                dataset="test", verify="full")
    assert victim.read_bytes() == files[victim.name]
    assert server.requests == [f"/mnist/{victim.name}.gz"]  # only the bad file was fetched


def test_all_sources_failing_is_one_clear_error(tmp_path: Path, files: dict[str, bytes],
                                                hanging_url: str) -> None:
    dead = refused_url()
    srcs = [MirrorSource(dead, 1), MirrorSource(hanging_url, 0.5),
            DirectorySource(tmp_path / "nowhere")]
    target = tmp_path / "mnist"
    with pytest.raises(DatasetError) as e:
        fetch_files(specs_for(files), target, srcs, dataset="mnist")
    message = str(e.value)
    assert f"1. data dir {target}: train-images-idx3-ubyte missing" in message
    assert f"2. mirror {dead}: " in message and "cannot connect" in message
    assert f"3. mirror {hanging_url}: " in message and "timed out" in message
    assert f"4. directory {tmp_path / 'nowhere'}: " in message and "does not exist" in message
    assert f"put these uncompressed files in {target}/" in message
    for spec in specs_for(files):
        assert f"{spec.name}  ({spec.size} bytes, sha256 {spec.sha256})" in message
    assert "lenet data fetch mnist" in message


def test_a_source_that_places_nothing_is_reported(tmp_path: Path, files: dict[str, bytes]) -> None:
    class Lazy:
        def describe(self) -> str:
            return "lazy source"

        def provide(self, files, target_dir, progress) -> None:
            pass

    with pytest.raises(DatasetError, match="lazy source: did not provide train-images"):
        fetch_files(specs_for(files), tmp_path, [Lazy()], dataset="test")


# --------------------------------------------------------------------------- local copies
def test_directory_source_takes_gz_and_dotted_names(tmp_path: Path,
                                                    files: dict[str, bytes]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name, data in files.items():
        dotted = name.replace("-idx", ".idx")
        if "train" in name:
            (src / f"{dotted}.gz").write_bytes(gzip.compress(data))
        else:
            (src / dotted).write_bytes(data)
    (src / "._train-images.idx3-ubyte").write_bytes(b"macOS resource fork")
    target = tmp_path / "out"
    fetch_files(specs_for(files), target, [DirectorySource(src)], dataset="test")
    for name, data in files.items():
        assert (target / name).read_bytes() == data


def test_install_file_rejects_wrong_bytes(tmp_path: Path, files: dict[str, bytes]) -> None:
    spec = specs_for(files)[1]
    src = tmp_path / "copy"
    src.write_bytes(files["t10k-labels-idx1-ubyte"][: spec.size])
    with pytest.raises(SourceFailed, match="corrupt"):
        install_file(src, spec, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
