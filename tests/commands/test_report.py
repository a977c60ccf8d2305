"""`lenet report` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.viz.helpers import run_cli


def test_cli_report(runs) -> None:
    rep = json.loads(run_cli(["report", str(runs["mlp"].run_dir), "--json"]))
    assert Path(rep["html"]).is_file()
    text = run_cli(["report", str(runs["mlp"].run_dir)])
    assert "note: " in text and "figures and" in text
