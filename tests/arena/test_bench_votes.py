"""The vote benchmark runs end to end: gunicorn on loopback, real clients, a database check."""

import io
import json

import pytest
from django.core.management import call_command


@pytest.mark.slow
def test_bench_votes_prints_one_json_line_with_no_lost_or_double_votes():
    out = io.StringIO()
    call_command("bench_votes", clients=2, seconds=1.5, models=4, prompts=3, workers=1, stdout=out)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    result = json.loads(lines[-1])
    assert {"cycles_per_s", "p50_ms", "p99_ms", "lost_votes", "double_votes"} <= result.keys()
    assert result["cycles"] > 0 and result["errors"] == {}
    assert result["lost_votes"] == 0 and result["double_votes"] == 0
    assert result["ratings_equal_replay"] is True
