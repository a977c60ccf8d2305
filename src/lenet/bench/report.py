"""`lenet bench`'s result as a Markdown table, and as JSON that holds only finite numbers."""

from __future__ import annotations

import math
from typing import Any

from lenet.bench.baseline import TARGET
from lenet.bench.training import LARGE_BATCH
from lenet.console import plural

TRAIN_LABELS = {
    "baseline_pipeline": "baseline (tutorials' PIL DataLoader pipeline, batch 64)",
    "lenet_train": "`lenet train` (lenet5 recipe, batch 64)",
    "lenet_train_autograd": "`lenet train` (lenet5 recipe, batch 64), autograd's step "
                            "(`--set step=torch`)",
    "lenet_train_batch512_auto": (f"`lenet train` (lenet5-fast, batch {LARGE_BATCH}, lr 0.2, "
                                  "--precision auto: bf16 only where native, and not where "
                                  "the compiled fp32 step beats it)"),
    "lenet5_fast": "`lenet train --config lenet5-fast`",
}
TIME_LABELS = {
    "baseline_pipeline": "baseline (tutorials' PIL DataLoader pipeline), Paper Study recipe",
    "lenet5_fast": "`lenet train --config lenet5-fast`",
}


def _pm(mean: float, std: float | None, fmt: str) -> str:
    """``mean ± std``; the mean alone where there is no spread (a single run)."""
    return f"{mean:{fmt}}" if std is None else f"{mean:{fmt}} ± {std:{fmt}}"


def _header(r: dict[str, Any]) -> list[str]:
    m = r["machine"]
    kind = "; ".join(filter(None, [m.get("cpu_model"), m.get("isa")]))
    where = m.get("gpu") or (f"{m['cpu']} ({kind})" if kind else m["cpu"])
    if m.get("isa_caps"):  # the libraries were told to use less of the CPU than it has
        where += " capped by " + ", ".join(f"{k}={v}" for k, v in m["isa_caps"].items())
    return [f"`{r['command']}` on {where} ({m['threads']} threads, torch {m['torch']}), "
            f"{r['date']}; load average before/after {m['load_average']} / "
            f"{m.get('load_average_after')}", "",
            "| what | value |", "|---|---|",
            f"| fp32 matmul peak ({r['settings']['peak_size']}²) | "
            f"{r['peak_gflops']:.1f} GFLOP/s |",
            f"| training FLOPs (lenet5, forward+backward) | {r['train_mflop_per_image']:.2f} "
            "MFLOP/image |"]


def _train_row(label: str, row: dict[str, Any]) -> str:
    acc, first = row.get("test_accuracy"), row.get("first_epoch_seconds")
    return (f"| training, {label} | {row['seconds_per_epoch']:.2f} s/epoch "
            f"(training only), {row['images_per_s']:,.0f} img/s, "
            f"{row['gflops']:.1f} GFLOP/s ({row['fraction_of_peak']:.1%} of peak)"
            + (f"; first (warm-up) epoch {first:.2f} s, fastest of the next "
               f"{row['epochs'] - 1}" if first is not None and row["epochs"] > 1 else "")
            + (f"; test accuracy {acc:.4f} after {plural(row['epochs'], 'epoch')}"
               if acc is not None else "")
            + ("; step compiled with numba" if row.get("compiled_step") else "")
            + " |")


def _time_rows(r: dict[str, Any]) -> list[str]:
    lines = []
    for key, label in TIME_LABELS.items():
        t = r[f"time_to_99_{key}"]
        n = len(t["runs"])
        lines.append(f"| time to {TARGET:.1%}, {label}, whole process, {n} seeds | "
                     f"{_pm(t['wall_seconds_mean'], t['wall_seconds_std'], '.2f')} s (max "
                     f"{t['wall_seconds_max']:.2f} s); test accuracy "
                     f"{_pm(t['test_accuracy_mean'], t['test_accuracy_std'], '.4f')}; "
                     f"reached {t['reached']}/{n} |")
    lines.append(f"| time-to-99 ratio (baseline ÷ ours) | {r['time_to_99_ratio']:.1f}x |")
    return lines


def _per_pattern_row(p: dict[str, float]) -> str:
    compiled = (f", compiled (numba) {p['compiled_us']:.0f} µs a call, "
                f"{p['compiled_chunked_us']:.0f} µs in the trainer's chunks"
                if "compiled_us" in p else ", compiled: numba not installed (lenet[fast])")
    return (f"| lenet5-1998 SDLM step at batch 1 (the paper's recipe), one thread | "
            f"autograd {p['autograd_us']:.0f} µs, hand-written {p['hand_written_us']:.0f}"
            f" µs ({p['speedup']:.2f}x){compiled}; curvature estimate "
            f"{p['curvature_seconds']:.2f} s; a 60,000-pattern pass (steps and estimate, no "
            f"test pass) in {p['pass_seconds']:.1f} s, 20 passes in "
            f"{20 * p['pass_seconds'] / 60:.1f} min |")


def _busy_core_row(b: dict[str, Any]) -> str:
    quiet, mine, every = b["quiet_default"], b["busy_default"], b["busy_every_core"]
    return (f"| an epoch beside one busy core (lenet5, whole process) | quiet "
            f"{quiet['seconds_per_epoch']:.2f} s ({quiet['threads']} threads); beside it, "
            f"lenet's default {mine['seconds_per_epoch']:.2f} s ({mine['threads']} threads, "
            f"{mine['vs_quiet']:.2f}x quiet), every core {every['seconds_per_epoch']:.2f} s "
            f"({every['threads']} threads, {every['vs_quiet']:.2f}x) |")


def _inference_rows(r: dict[str, Any]) -> list[str]:
    lines = [f"| inference, {name} | batch 1: {row['latency_us_batch1']:.1f} µs; "
             f"batch 1024: {row['images_per_s_batch1024']:,.0f} img/s |"
             for name, row in r["inference"].items()]
    lines.append(f"| best inference | {r['best_latency_us_batch1']:.1f} µs "
                 f"({r['best_latency_backend']}), {r['best_images_per_s_batch1024']:,.0f} img/s "
                 f"({r['best_throughput_backend']}) |")
    return lines


def markdown(r: dict[str, Any]) -> str:
    """The whole result as one Markdown table, under a line naming the machine and the load."""
    lines = _header(r)
    lines += [_train_row(TRAIN_LABELS[key], row) for key, row in r["train"].items()]
    lines.append(f"| epoch speed-up, `lenet train` vs baseline | {r['epoch_speedup']:.1f}x |")
    lines += _time_rows(r)
    if r.get("per_pattern"):
        lines.append(_per_pattern_row(r["per_pattern"]))
    if r.get("busy_core"):
        lines.append(_busy_core_row(r["busy_core"]))
    lines += _inference_rows(r)
    return "\n".join(lines) + "\n"


def finite(obj: Any) -> Any:
    """JSON has no NaN or infinity: such figures become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite(v) for v in obj]
    return obj
