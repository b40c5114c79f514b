"""The vote benchmark runs end to end: gunicorn on loopback, the ratings consumer as its own process, real
load-generator processes doing full cycles, a database check."""

import io
import json

import pytest
from django.core.management import call_command

KEYS = {"rate_target", "rate_achieved", "p50_ms", "p99_ms", "p99_ms_by_kind", "cpu_ms_per_cycle", "lost_votes",
        "double_votes", "ratings_equal_replay", "database"}


def _run(**options) -> dict:
    out = io.StringIO()
    call_command("bench_votes", models=4, prompts=10, workers=1, stdout=out, **options)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    return json.loads(lines[-1])


@pytest.mark.slow
def test_open_loop_bench_prints_one_json_line_with_no_lost_or_double_votes():
    result = _run(rate=8, seconds=2, think=0.2, voters=20)
    assert KEYS <= result.keys() and result["mode"] == "open" and result["rate_target"] == 8
    assert result["cycles"] > 0 and result["errors"] == {}
    assert set(result["p99_ms_by_kind"]) == {"poll", "image", "vote", "reveal"}
    assert result["p99_ms_by_kind"]["image"] is not None and result["p99_ms_by_kind"]["vote"] is not None
    assert set(result["cpu_ms_per_cycle"]) == {"server", "database", "generator"}
    assert 0 < result["consumer_cpu_ms_per_cycle"] <= result["cpu_ms_per_cycle"]["server"]
    assert result["cpu_ms_per_cycle"]["server"] > 0 and result["cpu_ms_per_cycle"]["generator"] > 0
    assert result["lost_votes"] == 0 and result["double_votes"] == 0
    assert result["ratings_equal_replay"] is True


@pytest.mark.slow
def test_closed_loop_bench_still_runs():
    result = _run(clients=2, seconds=1.5)
    assert result["mode"] == "closed" and result["cycles"] > 0 and result["errors"] == {}
    assert result["lost_votes"] == 0 and result["double_votes"] == 0 and result["ratings_equal_replay"] is True
