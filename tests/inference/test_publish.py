"""Publishing a run's weights into a bundle: the accuracy is measured again, never copied."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from lenet.analysis.evaluate import evaluate_weights
from lenet.errors import ConfigError, WeightsError
from lenet.inference import publish
from lenet.models import hub


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dest = tmp_path / "bundle"
    monkeypatch.setattr(hub, "PRETRAINED_DIR", dest)
    hub._read_checked.cache_clear()
    yield dest
    hub._read_checked.cache_clear()


def test_publish_measures_records_and_verifies(tiny_run, bundle: Path) -> None:
    lines: list[str] = []
    entry = publish.publish(tiny_run.run_dir, "tiny", recipe="lenet5", log=lines.append)
    raw = (bundle / "tiny.safetensors").read_bytes()
    assert raw == (tiny_run.run_dir / "model.safetensors").read_bytes()
    assert entry["sha256"] == hashlib.sha256(raw).hexdigest() and entry["bytes"] == len(raw)
    # Measured on the whole test set, not the run's 2,000-digit subset it logged.
    full = evaluate_weights(tiny_run.run_dir)
    assert entry["test_digits"] == 10_000 and entry["test_accuracy"] == full["accuracy"]
    first = evaluate_weights(tiny_run.run_dir, test_subset=1000)["accuracy"]
    assert entry["test_accuracy_first_1000"] == first
    assert tiny_run.test.total == 2000
    assert entry["seed"] == 1 and entry["recipe"] == "lenet5" and "run_dir" not in entry["config"]
    assert json.loads((bundle / hub.MANIFEST).read_text()) == {"tiny": entry}
    assert "published tiny" in lines[-1]
    (row,) = publish.verify(log=lines.append)
    assert row["measured"] == row["recorded"] == entry["test_accuracy"]


def test_publish_refuses_bad_names_and_large_files(tiny_run, bundle: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"weights name '\.\./x'"):
        publish.publish(tiny_run.run_dir, "../x")
    monkeypatch.setattr(publish, "MAX_BYTES", 1000)
    with pytest.raises(WeightsError, match="bundled weights must be at most 1,000"):
        publish.publish(tiny_run.run_dir, "tiny")
    assert not bundle.exists() or not any(bundle.iterdir())


def test_machine_names_the_vector_extensions() -> None:
    assert "(" in publish.machine() and publish.machine().endswith(")")
