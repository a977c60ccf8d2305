"""Issue 17's two safety questions, side by side in one process on one machine:

1. precision: `lenet train` epochs in fp32 and bf16 at batch 64 and 512 (lenet5-fast, in
   process, alternating rounds), so `--precision auto`'s rule can be checked on this CPU;
2. a busy core: whole `lenet train` processes quiet and beside one busy job (a Python spin
   loop), with the default threads (the cores free at start) and with OMP_NUM_THREADS=2.

    python benchmarks/precision_threads.py [--rounds 2] [--digits 30000]

Run it on a quiet machine; it names the CPU and its ISA. Figures go to BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def precision_rows(root: Path, rounds: int, digits: int) -> dict[str, list[float]]:
    from lenet.bench.training import train_speed

    res: dict[str, list[float]] = {}
    for r in range(rounds):
        for batch, lr in ((64, 0.01), (512, 0.2)):
            for precision in ("fp32", "bf16"):
                row = train_speed("lenet5-fast", {"batch_size": batch, "lr": lr,
                                                  "precision": precision},
                                  root / f"p{r}-{batch}-{precision}", "cpu", 3,
                                  train_subset=digits, test_subset=1000)
                res.setdefault(f"batch {batch} {precision}", []).append(row["images_per_s"])
    return res


def epoch(root: Path, env: dict[str, str], digits: int) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "lenet", "train", "--config", "lenet5", "--epochs", "2",
           "--train-subset", str(digits), "--test-subset", "1000", "--no-tensorboard",
           "--json", "--run-dir", str(root / "busy"), "--overwrite"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=True)
    threads = next((w for w in out.stderr.split("(")[1:] if "thread" in w), "?").split(")")[0]
    return json.loads(out.stdout)["seconds_per_epoch"], threads


def busy_rows(root: Path, digits: int) -> dict[str, tuple[float, str]]:
    base = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    rows = {"quiet, default threads": epoch(root, base, digits),
            "quiet, OMP_NUM_THREADS=1": epoch(root, {**base, "OMP_NUM_THREADS": "1"}, digits)}
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(2)
        rows["beside a busy core, default threads"] = epoch(root, base, digits)
        rows["beside a busy core, OMP_NUM_THREADS=2"] = epoch(
            root, {**base, "OMP_NUM_THREADS": "2"}, digits)
    finally:
        spin.kill()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--digits", type=int, default=30000)
    args = p.parse_args()
    from lenet.runtime.cpu import cpu_isa, cpu_name

    print(f"{cpu_name()} ({cpu_isa()}), {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for name, ips in precision_rows(Path(tmp), args.rounds, args.digits).items():
            print(f"{name}: best {max(ips):,.0f} img/s ({60000 / max(ips):.2f} s per 60k "
                  f"epoch); rounds {', '.join(f'{x:,.0f}' for x in ips)}")
        for name, (sec, threads) in busy_rows(Path(tmp), args.digits // 3 * 2).items():
            print(f"{name}: {sec:.2f} s/epoch ({threads})")


if __name__ == "__main__":
    main()
