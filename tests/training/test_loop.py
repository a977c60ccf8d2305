"""The loop's clock: compiling a step is never part of an epoch's time."""

from __future__ import annotations

import csv
import time
from dataclasses import replace

from lenet.config import resolve
from lenet.training import loop, steps


def test_a_steps_compile_happens_before_the_first_epochs_clock(tmp_path, mnist_ready,
                                                                monkeypatch) -> None:
    """A step whose warm-up (numba's compile) takes 0.5 s: the trainer runs it before the
    first epoch's clock starts, says so, and that epoch's recorded seconds are at most the
    time from the warm-up's end to the run's end."""
    ends: list[float] = []
    starts: list[float] = []
    built_by, begin = steps.build, loop._begin_epoch

    def begin_epoch(*args: object) -> loop._Epoch:
        ep = begin(*args)  # type: ignore[arg-type]
        starts.append(ep.started)
        return ep

    def slow_warm() -> float:
        time.sleep(0.5)
        ends.append(time.perf_counter())
        return 1.5

    def build(kind: steps.StepKind, parts: steps.Parts) -> steps.Built:
        return replace(built_by(kind, parts), warm=slow_warm)

    monkeypatch.setattr(steps, "build", build)
    monkeypatch.setattr(loop, "_begin_epoch", begin_epoch)
    lines: list[str] = []
    cfg = resolve(None, {"model": "lenet5", "epochs": 1, "train_subset": 256,
                         "test_subset": 128, "tensorboard": False, "device": "cpu",
                         "run_dir": str(tmp_path / "run")})
    loop.fit(cfg, log=lines.append, progress=False)
    finished = time.perf_counter()
    assert len(ends) == 1 and len(starts) == 1
    assert ends[0] <= starts[0]
    assert any(line.startswith("compiled the training step with numba in 1.5 s")
               for line in lines)
    with open(tmp_path / "run" / "metrics.csv") as f:
        seconds = float(next(csv.DictReader(f))["seconds"])
    assert seconds <= finished - ends[0]
