"""`lenet train --nproc N`'s launcher: what each torchrun worker runs."""

from __future__ import annotations

from lenet.training.launch import without_nproc


def test_each_worker_runs_the_command_without_nproc() -> None:
    assert without_nproc(["train", "--nproc", "2", "--epochs", "1"]) == ["train", "--epochs", "1"]
    assert without_nproc(["train", "--nproc=4", "--seed", "3"]) == ["train", "--seed", "3"]
    assert without_nproc(["train", "--nproc"]) == ["train"]
