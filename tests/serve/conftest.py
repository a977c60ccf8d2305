from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def predictor(run_dir):
    from lenet.predict import Predictor

    return Predictor.load(run_dir)


@pytest.fixture(scope="session")
def live_server(predictor):
    """A real uvicorn server on 127.0.0.1 (a free port picked by the OS), in a thread."""
    import threading
    import time

    import uvicorn

    from lenet.serve.app import create_app

    config = uvicorn.Config(create_app(predictor), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            pytest.fail("uvicorn did not start within 30 s")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    assert not thread.is_alive(), "uvicorn did not stop within 10 s"
