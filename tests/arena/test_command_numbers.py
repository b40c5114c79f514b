"""The arena's commands refuse bad numbers (argparse, with a message naming the value or the range) before they
do anything: no ratings applied, no server started, no simulation run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("bad, message", [
    ("-1", r"-1 is out of range \(0.001 to 3600\)"),
    ("0", r"0 is out of range \(0.001 to 3600\)"),
    ("nan", "'nan' is not a decimal number"),
    ("1e999", "'1e999' is not a decimal number"),
])
def test_apply_ratings_refuses_a_bad_interval_and_applies_nothing(monkeypatch, bad, message):
    from arena.management.commands import apply_ratings

    monkeypatch.setattr(apply_ratings, "ratings_apply_all", lambda: pytest.fail("applied despite a bad --interval"))
    with pytest.raises(CommandError, match=f"argument --interval: {message}"):
        call_command("apply_ratings", "--follow", "--interval", bad)


def test_apply_ratings_from_the_command_line_exits_2_with_the_message():
    done = subprocess.run([sys.executable, "manage.py", "apply_ratings", "--interval", "-1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "argument --interval: -1 is out of range (0.001 to 3600)" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "--port: the value must be from 1 to 65535, not 70000"),
    (["--port", "0"], "--port: the value must be from 1 to 65535, not 0"),
    (["--port", "80a"], "--port: the value must be a whole number"),
    (["--ready-timeout", "nan"], "--ready-timeout: 'nan' is not a decimal number"),
    (["--ready-timeout", "-5"], r"--ready-timeout: -5 is out of range \(0.1 to 3600\)"),
])
def test_serve_refuses_bad_numbers_and_starts_nothing(monkeypatch, args, message):
    from arena.management.commands import serve

    monkeypatch.setattr(serve.subprocess, "Popen", lambda *a, **kw: pytest.fail("started a process"))
    with pytest.raises(CommandError, match=message):
        call_command("serve", *args)


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0"], "--seeds: the value must be from 1, not 0"),
    (["--first-seed", "-1"], "--first-seed: the value must be from 0 to 4294967295, not -1"),
    (["--models", "1"], "--models: the value must be from 2 to 100, not 1"),
    (["--flip", "nan"], "--flip: 'nan' is not a decimal number"),
    (["--flip", "1.5"], r"--flip: 1.5 is out of range \(0 to 1\)"),
    (["--spread", "0"], r"--spread: 0 is out of range \(0.1 to 1000\)"),
    (["--threshold", "inf"], "--threshold: 'inf' is not a decimal number"),
    (["--bt-every", "0"], "--bt-every: the value must be from 1, not 0"),
    (["--rounds", "-1"], "--rounds: the value must be from 0 to 100000, not -1"),
    (["--exploration", "2"], r"--exploration: 2 is out of range \(0 to 1\)"),
    (["--sharpness", "0"], r"--sharpness: 0 is out of range \(0.001 to 100\)"),
])
def test_simulate_arena_refuses_bad_numbers_before_it_simulates(monkeypatch, args, message):
    from arena.management.commands import simulate_arena

    monkeypatch.setattr(simulate_arena, "simulate_arena", lambda *a, **kw: pytest.fail("simulated"))
    with pytest.raises(CommandError, match=message):
        call_command("simulate_arena", *args)
