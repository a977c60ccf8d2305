"""python -m lenet.bench.reading: numbers/s of the reader runs end to end (tiny settings; the
figures themselves are benchmarks, never asserted)."""

from __future__ import annotations

import json

from lenet.bench import reading
from lenet.models import create
from lenet.models.readers import publish, reader_meta
from lenet.models.sdnn import SDNN
from lenet.runtime import jobs


def test_the_reading_bench_runs_and_reports_each_input(tmp_path, capsys, mnist_ready) -> None:
    sdnn = SDNN.from_classifier(create("lenet5", pretrained=True))
    weights = publish(sdnn, reader_meta(0.5, {"margin": sdnn.margin}), "tiny", tmp_path)
    assert reading.main(["--count", "12", "--repeats", "1", "--threads", "1",
                         "--weights", str(weights)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["rows"]) == {f"{kind}{shared}" for kind in ("arrays", "png_bytes",
                                                                  "png_files")
                                   for shared in ("", "_workers")}
    for row in result["rows"].values():
        assert row["numbers_per_s"] > 0 and row["cpu_ms_per_number"] > 0
        assert 0 <= row["accuracy"] <= 1
    assert result["numbers"] == 12 and result["threads"] == 1 and result["cpu"]


def test_a_fresh_process_times_its_first_call_on_the_files(tmp_path, capsys, mnist_ready
                                                           ) -> None:
    strips, _ = reading.numbers(6)
    for i, strip in enumerate(strips):
        (tmp_path / f"{i}.png").write_bytes(reading._png(strip))
    assert reading.main(["--first-call", str(tmp_path), "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["seconds"] > 0


def test_the_cold_rows_are_medians_of_fresh_processes(monkeypatch, tmp_path) -> None:
    children: list[list[str]] = []

    def child(cmd: list[str]) -> tuple[dict, float]:
        children.append(cmd)
        return {"seconds": [0.5, 0.25, 2.0][len(children) % 3]}, 3.0

    monkeypatch.setattr(reading, "run_json", child)
    commands: list[list[str]] = []
    monkeypatch.setattr(reading.jobs, "run", lambda cmd, capture: commands.append(cmd)
                        or jobs.Finished(0, 1.0 + len(commands), "", ""))
    rows = reading._cold(str(tmp_path), threads=2, repeats=3, count=100)
    assert rows["first_call"]["numbers_per_s"] == 100 / 0.5  # the median of 3
    assert [c[c.index("--workers") + 1] for c in children] == ["1"] * 3 + ["2"] * 3
    assert rows["command"] == {"numbers_per_s": 100 / 3.0, "seconds": 3.0}
    assert commands[0][-3:] == ["lenet", "read", str(tmp_path)]
