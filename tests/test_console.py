"""Logs to stderr, results to stdout."""

from __future__ import annotations

import json

from lenet import console


def test_log_goes_to_stderr_and_json_to_stdout(capsys) -> None:
    console.log("epoch 1/2")
    console.silent("dropped")
    console.print_json({"test_accuracy": 0.99})
    out, err = capsys.readouterr()
    assert err == "epoch 1/2\n"
    assert json.loads(out) == {"test_accuracy": 0.99}
