"""The training commands and ``python -m training.trainers.cli`` refuse bad numbers (argparse, with a message naming
the value or the range) before they train, write or queue anything."""

from __future__ import annotations

import argparse
import json
import re

import pytest
from django.core.management import CommandError, call_command

from training.trainers import cli


@pytest.mark.parametrize("args, message", [
    (["1", "--time-slice", "nan"], "--time-slice: 'nan' is not a decimal number"),
    (["1", "--time-slice", "inf"], "--time-slice: 'inf' is not a decimal number"),
    (["1", "--time-slice", "-1"], r"--time-slice: -1 is out of range \(0.001 to 1000000000\)"),
    (["0"], "run_id: the value must be from 1, not 0"),
    (["٣"], "run_id: the value must be a whole number"),
])
def test_train_refuses_bad_numbers_and_runs_nothing(monkeypatch, args, message):
    from training import services

    monkeypatch.setattr(services, "run_execute", lambda **kw: pytest.fail("ran despite a bad number"))
    monkeypatch.setattr(services, "slice_train", lambda **kw: pytest.fail("trained despite a bad number"))
    with pytest.raises(CommandError, match=message):
        call_command("train", *args)
    with pytest.raises(CommandError, match=message):
        call_command("train", *args, "--process")


@pytest.mark.parametrize("args, message", [
    (["--stop-after", "-1"], r"argument --stop-after: -1 is out of range \(at least 1\)"),
    (["--stop-after", "0"], r"argument --stop-after: 0 is out of range \(at least 1\)"),
    (["--stop-after", "1e3"], "argument --stop-after: '1e3' is not a whole number"),
    (["--time-slice", "nan"], "argument --time-slice: 'nan' is not a decimal number"),
    (["--time-slice", "0"], r"argument --time-slice: 0 is out of range \(0.001 to 1000000000\)"),
])
def test_the_trainers_cli_refuses_bad_numbers_with_exit_2_and_reads_nothing(tmp_path, monkeypatch, capsys, args, message):
    from training.trainers import run

    monkeypatch.setattr(run, "train", lambda *a, **kw: pytest.fail("trained despite a bad number"))
    spec = tmp_path / "run.json"
    spec.write_text(json.dumps({"config": {"method": "dpo"}, "paths": {"dataset": "", "work_dir": str(tmp_path / "w"),
                                                                      "output_dir": str(tmp_path / "o")}}))
    with pytest.raises(SystemExit) as exit_:
        cli.main([str(spec), *args])
    assert exit_.value.code == cli.EXIT_ERROR == 2
    assert re.search(message, capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_the_trainers_cli_types_take_good_values_and_refuse_what_float_takes():
    assert cli.int_arg(minimum=1)("5") == 5 and cli.float_arg(minimum=0)("0.5") == 0.5
    assert cli.float_arg(minimum=0.001)("5") == 5.0
    for bad in ("1e999", "nan", "inf", "", "٣", " 5", "1_000"):
        for parse in (cli.int_arg(minimum=None), cli.float_arg()):
            with pytest.raises(argparse.ArgumentTypeError, match="(a whole|not a decimal) number"):
                parse(bad)
    with pytest.raises(argparse.ArgumentTypeError, match=r"^11 is out of range \(1 to 10\)$"):
        cli.int_arg(minimum=1, maximum=10)("11")


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "--seed: the value must be from 0 to 4294967295, not -1"),
    (["--pairs", "-1"], "--pairs: the value must be from 0, not -1"),
    (["--pairs", "nan"], "--pairs: the value must be a whole number"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--heldout-polls", "0"], "--heldout-polls must be at least 1"),
])
def test_closed_loop_refuses_bad_numbers_before_it_trains(tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("closed_loop", "--method", "dpo", "--work-dir", str(tmp_path / "loop"), *args)
    assert not (tmp_path / "loop").exists()


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "--steps: the value must be from 1, not 0"),
    (["--batch", "-2"], "--batch: the value must be from 1 to 256, not -2"),
    (["--resolution", "100"], "--resolution must be a multiple of 64, not 100"),
    (["--resolution", "32"], "--resolution: the value must be from 64 to 2048, not 32"),
    (["--seed", "nan"], "--seed: the value must be a whole number"),
    (["--kto-weight", "nan"], "--kto-weight: 'nan' is not a decimal number"),
    (["--heldout-fraction", "inf"], "--heldout-fraction: 'inf' is not a decimal number"),
    (["--control-relabelings", "-1"], "--control-relabelings: the value must be from 0 to 10000, not -1"),
])
def test_bench_training_refuses_bad_numbers_before_it_runs(monkeypatch, args, message):
    from generation import tiny

    monkeypatch.setattr(tiny, "make_tiny_models", lambda *a, **kw: pytest.fail("started despite a bad number"))
    with pytest.raises(CommandError, match=message):
        call_command("bench_training", "--method", "dpo", *args)
