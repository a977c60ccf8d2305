"""What a user can cause is a LenetError: one line and exit status 2 from `lenet`."""

from __future__ import annotations

import pytest

from lenet import ConfigError, DatasetError, LenetError, WeightsError
from lenet.cli import main
from lenet.errors import OutputError


@pytest.mark.parametrize("error", [ConfigError, DatasetError, WeightsError, OutputError])
def test_user_errors_are_lenet_errors(error: type[Exception]) -> None:
    assert issubclass(error, LenetError) and not issubclass(error, (OSError, ValueError))


def test_a_lenet_error_is_one_line_and_status_2(capsys) -> None:
    assert main(["summary", "lenet6"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lenet: error: unknown model 'lenet6'") and err.count("\n") == 1


@pytest.mark.parametrize(("rank", "where"), [("0", ""), ("", ""), ("x", ""), ("3", " (process 3)")])
def test_the_error_line_names_a_process_only_for_a_real_rank(monkeypatch, capsys, rank, where):
    # Was "lenet: error (process x): ..." for RANK=x, which check_environment reports itself.
    from lenet.errors import ConfigError, exit_status

    monkeypatch.setenv("RANK", rank)

    def fail() -> int:
        raise ConfigError("bad")

    assert exit_status(fail) == 2
    assert capsys.readouterr().err == f"lenet: error{where}: bad\n"
