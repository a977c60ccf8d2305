"""`lenet models`, as a user runs it."""

import json

from tests.commands.cli import lenet


def test_models_lists_the_registry_as_json() -> None:
    rows = json.loads(lenet("models", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["lenet5"]["params"] == 61_706
    assert by_name["lenet5-tanh"]["input_size"] == 28
    # Which architectures have bundled weights (`lenet weights list`).
    assert by_name["lenet5"]["pretrained"] is True and by_name["mlp-300"]["pretrained"] is False
