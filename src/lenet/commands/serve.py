"""`lenet serve`: the draw-a-digit web app and JSON API (see :mod:`lenet.inference.serve.app`).

FastAPI and uvicorn are imported only when the command runs, so the rest of lenet works without
the `serve` extra. The model is loaded, then the port bound (a port in use is a one-line error),
and only then is "serving on" printed.
"""

from __future__ import annotations

import argparse

from lenet.commands import options


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("serve", help="draw-a-digit web app and JSON API",
                       description="Serve a page where you draw a digit and watch the network "
                                   "read it, every layer live, with image upload and distortion "
                                   "sliders, plus POST /api/predict, POST /api/activations, "
                                   "GET /api/model, /healthz and offline API docs at /docs. "
                                   "Works with no network.")
    p.add_argument("path", metavar="WEIGHTS", nargs="?",
                   help=options.WEIGHTS_HELP + " (default: the bundled default weights, "
                        "lenet5-real, made for photos and scans)")
    options.add_weights(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free one)")
    p.add_argument("--max-in-flight", type=int, default=4,
                   help="inferences running at once (default 4)")
    p.add_argument("--max-decode-mb", type=int, default=200, metavar="MB",
                   help="memory the image decodes running at once may take together, by the "
                        "estimate read from each image's header (default 200); an image that "
                        "alone needs more is refused (413)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="also answer requests whose Host header is NAME (repeatable; '*': any). "
                        "By default only localhost, 127.0.0.1, ::1 and --host are answered; "
                        "add the machine's name with --host 0.0.0.0, or the public name "
                        "behind a reverse proxy")
    p.add_argument("--read-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="close a connection whose request (headers and body) has not fully "
                        "arrived within this many seconds (default 30)")
    p.add_argument("--reader", metavar="NAME|FILE", default=None,
                   help="reader weights for the number mode and /api/read (default: the "
                        "bundled reader, loaded on the first number read); checked at start")
    p.set_defaults(handler=run)
    return p


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def run(args: argparse.Namespace) -> int:
    from lenet.errors import LenetError
    from lenet.models.hub import DEFAULT_WEIGHTS  # bundled: works before any training
    from lenet.runtime.threads import use_free_cores

    try:
        from lenet.inference.serve.app import create_app, default_hosts, listen, run_server
    except ImportError as e:
        # Named for what the user knows (the extra, FastAPI), whichever piece is missing.
        missing = f"; {e.name} is missing" if e.name else ""
        raise LenetError(f"`lenet serve` needs the serve extra (FastAPI and uvicorn{missing}): "
                         'pip install "lenet[serve]"') from None
    if not 0 <= args.port <= 65535:
        raise LenetError(f"--port {args.port}: expected 0..65535")
    if args.max_in_flight < 1:
        raise LenetError(f"--max-in-flight {args.max_in_flight}: expected at least 1")
    if args.max_decode_mb < 16:
        raise LenetError(f"--max-decode-mb {args.max_decode_mb}: expected at least 16")
    if not args.read_timeout > 0:
        raise LenetError(f"--read-timeout {args.read_timeout:g}: expected a number of seconds "
                         "above 0")
    weights = options.pick_weights(args.path, args.weights, DEFAULT_WEIGHTS)
    use_free_cores()  # threads for the cores free now: no collapse beside other work
    # A reader named here is loaded now: a wrong name is this command's one-line error, not
    # a 503 on the first number someone writes.
    reader = None
    if args.reader is not None:
        from lenet.inference.read.reader import Reader

        reader = Reader(args.reader)
    app = create_app(weights, max_in_flight=args.max_in_flight,
                     max_decode_bytes=args.max_decode_mb * 1024 * 1024,
                     allowed_hosts=[*default_hosts(args.host), *args.allowed_host],
                     reader=reader)
    sock = listen(args.host, args.port)  # bound after the model loads: no client waits on it
    try:
        print(f"lenet: serving on {_url(args.host, sock.getsockname()[1])} (Ctrl-C to stop)",
              flush=True)
        run_server(app, sock, read_timeout=args.read_timeout)
    finally:
        sock.close()
    return 0
