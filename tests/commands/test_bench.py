"""`lenet bench`'s flags: the shared vocabulary, and nothing heavy imported to parse them."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest


def _parse(*argv: str) -> argparse.Namespace:
    from lenet.commands import bench

    parser = argparse.ArgumentParser()
    bench.add_parser(parser.add_subparsers())
    return parser.parse_args(["bench", *argv])


def test_defaults_and_flags() -> None:
    from lenet.commands import bench

    a = _parse()
    assert (a.json, a.out, a.quick, a.seeds, a.device) == (False, None, False, None, "auto")
    assert a.handler is bench.run
    a = _parse("--json", "--out", "b.json", "--quick", "--seeds", "3", "--device", "cpu")
    assert (a.json, a.out, a.quick, a.seeds, a.device) == (True, "b.json", True, 3, "cpu")
    with pytest.raises(SystemExit):
        _parse("--device", "tpu")


def test_the_command_module_imports_nothing_heavy() -> None:
    code = ("import sys, lenet.commands.bench; "
            "print(sorted(m for m in ('torch', 'lenet.bench', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_isa_is_native_unless_asked_and_the_child_gets_every_other_flag_back() -> None:
    from lenet.commands import bench

    assert _parse().isa == "native"
    with pytest.raises(SystemExit):
        _parse("--isa", "sse4")
    a = _parse("--isa", "avx2", "--quick", "--seeds", "3", "--out", "b.json", "--json")
    child = _parse(*bench.child_argv(a)[1:])
    assert child.isa == "native"
    assert ((child.quick, child.seeds, child.out, child.json, child.device)
            == (a.quick, a.seeds, a.out, a.json, a.device))
    assert {k: v for k, v in vars(child).items() if k != "isa"} == {  # and every other flag
        k: v for k, v in vars(a).items() if k != "isa"}
    from lenet.commands import build_parser

    full = build_parser()
    for flag in ("-q", "-v"):  # -q/-v too: the child's progress is what the user sees
        a = full.parse_args(["bench", "--isa", "avx2", flag])
        assert full.parse_args(bench.child_argv(a)).log_level == a.log_level != 20


def test_a_capped_bench_runs_itself_again_under_the_caps(monkeypatch) -> None:
    from lenet.cli import main
    from lenet.runtime import cpu, jobs

    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    calls = []

    def fake_run(argv, env, grace):
        calls.append((argv, env))
        return 3

    monkeypatch.setattr(jobs, "run_foreground", fake_run)
    assert main(["bench", "--isa", "avx2", "--quick"]) == 3  # the child's status
    (argv, env), = calls
    assert argv == [sys.executable, "-m", "lenet", "bench", "--device", "auto", "--quick"]
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert env["MKL_ENABLE_INSTRUCTIONS"] == "AVX2"


def test_a_cap_above_what_the_cpu_has_is_one_line(monkeypatch, capsys) -> None:
    from lenet.cli import main
    from lenet.runtime import cpu

    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert main(["bench", "--isa", "avx512"]) == 2
    err = capsys.readouterr().err
    assert "--isa avx512: this CPU (AVX2) has no AVX512" in err and "Traceback" not in err
