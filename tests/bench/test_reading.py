"""python -m lenet.bench.reading: numbers/s of the reader runs end to end (tiny settings; the
figures themselves are benchmarks, never asserted)."""

from __future__ import annotations

import json

from lenet.bench import reading
from lenet.models import create
from lenet.models.readers import publish, reader_meta
from lenet.models.sdnn import SDNN


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
