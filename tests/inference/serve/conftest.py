from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def predictor(run_dir):
    from lenet.inference.predict import Predictor

    return Predictor.load(run_dir)


@pytest.fixture(scope="session")
def reader_weights(tmp_path_factory):
    """The bundled default reader weights; where this checkout has none yet, the SDNN that
    runs the bundled lenet5 digit weights over the line (SDNN.from_classifier), as a file."""
    from lenet.models import readers

    if readers.is_reader_name(readers.DEFAULT_READER):
        return readers.DEFAULT_READER
    from lenet.models import weights
    from lenet.models.sdnn import SDNN

    model, _ = weights.load_model("lenet5")
    return str(readers.publish(SDNN.from_classifier(model), readers.reader_meta(0.5, {}),
                               "sdnn", tmp_path_factory.mktemp("reader")))


@contextlib.contextmanager
def serving(predictor, reader=None) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1 (a free port picked by the OS), in a thread, set up
    as `lenet serve` sets it up (lenet.inference.serve.app.listen and server_config); yields its
    URL."""
    import threading
    import time

    import uvicorn

    from lenet.inference.serve.app import create_app, listen, server_config

    sock = listen("127.0.0.1", 0)
    app = create_app(predictor, reader=reader)
    server = uvicorn.Server(server_config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            pytest.fail("uvicorn did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not stop within 15 s"


@pytest.fixture(scope="session")
def live_server(predictor):
    with serving(predictor) as url:
        yield url
