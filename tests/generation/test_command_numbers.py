"""The commands' strict numbers (``generation.fields.cli_int`` / ``cli_float``, re-exported by ``arena.inputs``):
good values pass, malformed or out-of-range ones are refused by argparse with a message naming the value or the
range, before the command does anything."""

from __future__ import annotations

import argparse

import pytest
from django.core.management import CommandError, call_command

from generation.fields import cli_float, cli_int, digits_int
from generation.models import ModelVariant

REFUSED = ("1e999", "nan", "inf", "-inf", "", "٣", "²", " 5", "5 ", "1_000", "0x10", "+5", "5.", ".5")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--n", type=cli_int(minimum=1, maximum=10))
    parser.add_argument("--x", type=cli_float(minimum=0, maximum=1))
    return parser


def test_the_strict_numbers_take_good_values():
    args = _parser().parse_args(["--n", "5", "--x", "0.5"])
    assert (args.n, args.x) == (5, 0.5) and type(args.n) is int and type(args.x) is float
    assert cli_float(minimum=0)("5") == 5.0 and cli_float()("-2.25") == -2.25
    assert cli_int(minimum=None)("-3") == -3 and cli_int()("0042") == 42
    assert _parser().parse_args([]).n is None  # a None default stays None


@pytest.mark.parametrize("text", REFUSED)
def test_the_strict_numbers_refuse_what_int_and_float_would_take_or_crash_on(text):
    for parse in (cli_int(minimum=None), cli_float()):
        with pytest.raises(argparse.ArgumentTypeError, match="(a whole|not a decimal) number"):
            parse(text)


@pytest.mark.parametrize("option, text, message", [
    ("--n", "0", "must be from 1 to 10, not 0"),
    ("--n", "-1", "must be from 1 to 10, not -1"),
    ("--n", "11", "must be from 1 to 10, not 11"),
    ("--n", "9" * 19, "at most 18"),
    ("--x", "1.5", r"1.5 is out of range \(0 to 1\)"),
    ("--x", "-0.1", r"-0.1 is out of range \(0 to 1\)"),
    ("--x", "nan", "'nan' is not a decimal number"),
])
def test_out_of_range_values_are_refused_with_the_value_and_the_range(option, text, message):
    with pytest.raises(argparse.ArgumentError, match=message):
        _parser().parse_args([option, text])


def test_the_web_forms_integers_keep_their_messages():
    from arena import inputs

    assert inputs.cli_int is cli_int and inputs.cli_float is cli_float  # the old imports go on working
    with pytest.raises(inputs.InputError, match=r"^n must be a whole number written in digits 0-9 \(at most 18\), not '-3'\.$"):
        inputs.int_clean("-3", name="n")  # minimum 0: no sign at all
    with pytest.raises(inputs.InputError, match=r"^n must be from 1 to 4, not 5\.$"):
        inputs.int_clean("5", name="n", minimum=1, maximum=4)
    with pytest.raises(ValueError, match=r"^n must be up to 4, not 5\.$"):
        digits_int("5", name="n", minimum=None, maximum=4)
    assert cli_float(minimum=0.001)("0.5") == 0.5
    with pytest.raises(argparse.ArgumentTypeError, match=r"^0 is out of range \(at least 0.001\)$"):
        cli_float(minimum=0.001)("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^2000000000 is out of range \(at most 1000000000\)$"):
        cli_float(maximum=10**9)("2000000000")


@pytest.mark.django_db
@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "--steps: the value must be from 1 to 150, not 0"),
    (["--steps", "-1"], "--steps: the value must be from 1 to 150, not -1"),
    (["--cfg", "nan"], "--cfg: 'nan' is not a decimal number"),
    (["--cfg", "31"], r"--cfg: 31 is out of range \(0 to 30\)"),
    (["--width", "99999"], "--width: the value must be from 256 to 2048, not 99999"),
    (["--height", "٣"], "--height: the value must be a whole number"),
    (["--clip-skip", "0"], "--clip-skip: the value must be from 1 to 12"),
    (["--hr-scale", "inf"], "--hr-scale: 'inf' is not a decimal number"),
    (["--hr-second-pass-steps", "-1"], "--hr-second-pass-steps: the value must be from 0 to 150"),
    (["--denoising-strength", "0"], r"--denoising-strength: 0 is out of range \(0.01 to 1\)"),
])
def test_register_model_refuses_bad_numbers_and_registers_nothing(tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("register_model", str(tmp_path / "model.safetensors"), "--name", "Bad numbers", *args)
    assert not ModelVariant.objects.exists()


@pytest.mark.django_db
def test_score_images_refuses_a_batch_of_zero_and_scores_nothing(monkeypatch):
    from generation.scoring import services as scoring
    from generation.scoring.models import ImageScore

    monkeypatch.setattr(scoring, "scores_compute", lambda **kw: pytest.fail("scored despite a bad --batch-size"))
    for bad, message in (("0", "not 0"), ("-5", "not -5"), ("1e3", "'1e3'")):
        with pytest.raises(CommandError, match=rf"--batch-size: the value must be .*{message}"):
            call_command("score_images", "--batch-size", bad)
    assert not ImageScore.objects.exists()


@pytest.mark.parametrize("command, args, message", [
    ("make_tiny_scorers", ["--seed", "-1"], "--seed: the value must be from 0 to 4294967295, not -1"),
    ("bench_generation", ["--models", "5"], "--models: the value must be from 1 to 4, not 5"),
    ("bench_generation", ["--steps", "0"], "--steps: the value must be from 1 to 150, not 0"),
    ("bench_generation", ["--batch-size", "0"], "--batch-size: the value must be from 1 to 1000, not 0"),
    ("bench_generation", ["--size", "nan"], "--size: the value must be a whole number"),
])
def test_the_generation_commands_refuse_bad_numbers_before_they_start(command, args, message, tmp_path):
    with pytest.raises(CommandError, match=message):
        call_command(command, *args, *([str(tmp_path / "scorers")] if command == "make_tiny_scorers" else []))
    assert not (tmp_path / "scorers").exists()
