"""`python -m lenet.training.steps.warm` (run by `make install`) compiles both numba steps."""

from __future__ import annotations

import pytest

pytest.importorskip("numba", reason="numba is not installed: the compiled steps are optional")

from lenet.training.steps import warm
from lenet.training.steps.lenet5_kernels import part_step
from lenet.training.steps.pattern_kernels import sequence


def test_warm_readies_both_steps(capsys: pytest.CaptureFixture[str]) -> None:
    assert warm.main() == 0
    assert len(part_step.signatures) == 1 and len(sequence.signatures) == 1
    err = capsys.readouterr().err
    assert "lenet5: numba step ready in" in err and "lenet5-1998: numba step ready in" in err


def test_without_numba_it_says_so_and_succeeds(monkeypatch, capsys) -> None:
    def no_numba() -> dict[str, float]:
        raise ImportError("No module named 'numba'")

    monkeypatch.setattr(warm, "warm", no_numba)
    assert warm.main() == 0
    assert 'pip install "lenet[fast]"' in capsys.readouterr().err
