"""Test accuracy of shipped recipes, mean ± std over seeds, from real training on real data.

    python benchmarks/accuracy.py lenet5 lenet5-tanh mlp lenet5-sigmoid-fashion --seeds 3

Each run is a plain `lenet train --config RECIPE --seed S --json` process; prints a Markdown
table and writes every run's figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run(recipe: str, seed: int, run_root: Path) -> dict:
    cmd = [sys.executable, "-m", "lenet", "train", "--config", recipe, "--seed", str(seed),
           "--run-dir", str(run_root / f"{recipe}-seed{seed}"), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return {**json.loads(proc.stdout), "seed": seed, "wall_seconds": time.perf_counter() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="+")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--run-root", default="runs/accuracy")
    p.add_argument("--out", default="benchmarks/results/accuracy.json")
    a = p.parse_args()
    results: dict[str, list[dict]] = {}
    print("| recipe | model | dataset | epochs | test accuracy % (mean ± std) | runs | s/epoch |")
    print("|---|---|---|---:|---|---|---:|")
    for recipe in a.recipes:
        runs = [run(recipe, seed, Path(a.run_root)) for seed in range(a.seeds)]
        results[recipe] = runs
        accs = [100 * r["test_accuracy"] for r in runs]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        spe = statistics.mean(r["seconds_per_epoch"] for r in runs)
        each = ", ".join(f"{x:.2f}" for x in accs)
        print(f"| {recipe} | {runs[0]['model']} | {runs[0]['dataset']} | {runs[0]['epochs']} "
              f"| {statistics.mean(accs):.2f} ± {std:.2f} | {each} | {spe:.2f} |", flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
