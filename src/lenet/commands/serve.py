"""`lenet serve`: the draw-a-digit web app and JSON API (see :mod:`lenet.serve.app`).

FastAPI and uvicorn are imported only when the command runs, so the rest of lenet works without
the `serve` extra.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("serve", help="draw-a-digit web app and JSON API",
                       description="Serve a page where you draw a digit and watch the network "
                                   "read it, plus POST /api/predict, GET /api/model, /healthz "
                                   "and offline API docs at /docs. Works with no network.")
    p.add_argument("weights", metavar="WEIGHTS", help="run directory or .safetensors file")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-in-flight", type=int, default=4,
                   help="inferences running at once (default 4)")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from lenet.errors import LenetError

    try:
        import uvicorn

        from lenet.serve.app import create_app
    except ImportError as e:
        raise LenetError(f"`lenet serve` needs the serve extra ({e.name} is missing): "
                         "pip install 'lenet[serve]'") from None
    if not 0 <= args.port <= 65535:
        raise LenetError(f"--port {args.port}: expected 0..65535")
    if args.max_in_flight < 1:
        raise LenetError(f"--max-in-flight {args.max_in_flight}: expected at least 1")
    app = create_app(args.weights, max_in_flight=args.max_in_flight)
    print(f"lenet: serving on http://{args.host}:{args.port}/ (Ctrl-C to stop)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
