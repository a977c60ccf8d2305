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
