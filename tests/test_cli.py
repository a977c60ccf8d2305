"""The `lenet` command end to end, as a user runs it (subprocesses)."""

import json
import subprocess
import sys

import pytest

TIMEOUT = 240


def lenet(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "lenet", *args], capture_output=True, text=True,
                          timeout=TIMEOUT)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_models_lists_the_registry_as_json() -> None:
    rows = json.loads(lenet("models", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["lenet5"]["params"] == 61_706
    assert by_name["lenet5-tanh"]["input_size"] == 28


def test_summary_counts_connections() -> None:
    d = json.loads(lenet("summary", "lenet5", "--json").stdout)
    c1 = d["layers"][0]
    assert c1["output_shape"] == [6, 28, 28]
    assert c1["params"] == 156 and c1["connections"] == 122_304
    assert d["total_params"] == 61_706


@pytest.mark.slow
def test_train_then_evaluate_end_to_end(tmp_path, mnist_ready) -> None:
    run_dir = tmp_path / "run"
    out = lenet("train", "--model", "lenet5", "--epochs", "1", "--train-subset", "5000",
                "--test-subset", "1000", "--batch-size", "32", "--lr", "0.003",
                "--run-dir", str(run_dir), "--json")
    result = json.loads(out.stdout)  # stdout holds only the JSON; logs went to stderr
    assert result["model"] == "lenet5" and result["epochs"] == 1
    assert result["test_accuracy"] > 0.85
    assert "epoch 1/1" in out.stderr and "img/s" in out.stderr
    ev = json.loads(lenet("evaluate", str(run_dir), "--json").stdout)
    # The saved run evaluated on the full test set; training saw the first 1,000 only.
    assert ev["total"] == 10_000 and ev["accuracy"] > 0.85


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--model", "lenet6"], "unknown model 'lenet6'"),
        (["train", "--epochs", "0"], "epochs must be at least 1"),
        (["train", "--config", "nope.yaml"], "does not exist"),
        (["train", "--set", "lr"], "expected KEY=VALUE"),
        (["evaluate", "/nonexistent/run"], "no such weights file or run directory"),
        (["data", "fetch", "cifar"], "cifar"),
    ],
)
def test_user_mistakes_get_one_clear_line_and_status_2(args: list[str], message: str) -> None:
    proc = lenet(*args, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_data_info_reports_counts_and_checksums(mnist_ready) -> None:
    (info,) = json.loads(lenet("data", "info", "mnist", "--json").stdout)
    assert info["samples"] == {"train": 60_000, "test": 10_000}
    assert set(info["files"].values()) == {"ok"}
    assert sum(info["label_histogram"]["test"].values()) == 10_000
    text = lenet("data", "info", "mnist").stdout
    assert "t10k-images-idx3-ubyte" in text and "60,000" in text
