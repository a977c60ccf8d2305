"""Load and soak benchmark of `lenet serve`: a real server process, real HTTP on 127.0.0.1.

    python benchmarks/serve_load.py RUN_DIR [--clients 8] [--requests 2000] [--soak-seconds 60]
                                    [--out FILE.json]

Load: `--requests` valid requests (JSON pixels, PNG uploads of real MNIST test digits, dark-on-light
scans, raw image/png bodies) from `--clients` concurrent keep-alive clients: requests/s, p50/p90/p99
latency, errors, status histogram, and how many digits came back right.

Soak: `--soak-seconds` of mixed valid and invalid requests (oversized bodies, images over the pixel
cap, non-images, bad JSON, wrong pixel counts, NaN pixels, wrong content types, malformed
multipart, a foreign Host header...): the count per status code, 5xx and transport errors
(dropped connections), and the server's resident memory after a warm-up and at the end.
`--requests 0` or `--soak-seconds 0` skips a mode.

Prints a Markdown table; `--out` also writes every figure as JSON. The pieces live in
benchmarks/loadtest.py.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

from lenet.storage.atomic import write_text

try:
    from benchmarks import loadtest
except ImportError:  # run as `python benchmarks/serve_load.py`: this folder is on sys.path
    import loadtest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory or .safetensors file")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--requests", type=int, default=2000,
                   help="valid requests in the load test (default 2000; 0 skips it)")
    p.add_argument("--soak-seconds", type=float, default=60.0,
                   help="length of the mixed valid/invalid soak (default 60; 0 skips it)")
    p.add_argument("--digits", type=int, default=500,
                   help="distinct MNIST test digits to send (default 500)")
    p.add_argument("--max-seconds", type=float, default=900.0,
                   help="upper bound on the load test's duration (default 900)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the results as JSON to this file")
    a = p.parse_args(argv)
    if a.clients < 1 or a.requests < 0 or a.soak_seconds < 0 or a.digits < 1:
        p.error("--clients and --digits must be at least 1; --requests and --soak-seconds >= 0")

    images, labels = loadtest.load_digits(a.digits, a.seed)
    valid = loadtest.valid_requests(images, labels)
    invalid = loadtest.invalid_requests()
    load = soak = None
    t0 = time.perf_counter()
    with loadtest.running_server(a.run_dir) as server:
        print(f"lenet serve (pid {server.pid}) up on {server.url} after "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        if a.requests:
            loadtest.warm_up(server.url, valid, [], clients=a.clients)
            print(f"load: {a.requests} requests, {a.clients} clients...", file=sys.stderr,
                  flush=True)
            load = loadtest.load_test(server, valid, clients=a.clients, requests=a.requests,
                                      max_seconds=a.max_seconds)
        if a.soak_seconds:
            print(f"soak: {a.soak_seconds:g} s, {a.clients} clients...", file=sys.stderr,
                  flush=True)
            soak = loadtest.soak_test(server, valid, invalid, clients=a.clients,
                                      seconds=a.soak_seconds, seed=a.seed)
    print(loadtest.markdown(load, soak, clients=a.clients))
    if a.out:
        doc = {"run_dir": str(a.run_dir), "clients": a.clients, "requests": a.requests,
               "soak_seconds": a.soak_seconds, "digits": len(valid), "seed": a.seed,
               "python": platform.python_version(), "machine": platform.machine(),
               "load": load.to_dict() if load else None,
               "soak": soak.to_dict() if soak else None}
        write_text(a.out, json.dumps(doc, indent=2) + "\n")
        print(f"wrote {a.out}", file=sys.stderr)
    failed = (load is not None and load.errors) or (soak is not None and (
        soak.summary.errors or not soak.server_alive))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
