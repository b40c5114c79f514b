"""bench_training prints one JSON line whose loss equals the reference step's on the same batch (the speed target
is the benchmark's to report, not a timed test)."""

import json
from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.parametrize("method, kind", [("dpo", "eps"), ("dpo", "v"), ("sft", "eps")])
def test_bench_training_prints_one_json_line_with_the_reference_loss(tiny_models, method, kind):
    out = StringIO()
    call_command("bench_training", "--method", method, "--prediction-type", kind, "--steps", "1", "--repeats", "1",
                 "--tiny-dir", tiny_models.root, stdout=out)
    (line,) = out.getvalue().strip().splitlines()
    data = json.loads(line)
    assert {"steps_per_s", "s_per_step", "reference_s_per_step", "slowdown_ratio", "peak_rss_mb", "loss",
            "reference_loss"} <= set(data)
    assert data["method"] == method and data["prediction_type"] == kind
    assert abs(data["loss"] - data["reference_loss"]) <= 1e-5 and data["loss_equal_1e-5"] is True
    assert data["steps_per_s"] > 0 and data["peak_rss_mb"] > 0
