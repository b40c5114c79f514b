"""Fuzzing the API from its OpenAPI schema (issue 10): schemathesis reads /api/schema/ from the live test server and
sends a bounded number of generated requests, valid and invalid, to every operation (its examples, coverage, fuzzing
and stateful phases), and runs all its checks: no 5xx, and every response as the schema says (a documented status,
content type, headers and body; invalid input refused with a 4xx, valid input accepted).

It runs schemathesis' command line, as CI would: its pytest plugin (4.32) sets ``Node._nodeid``, which pytest 9.2 no
longer has."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from tests.arena.votelog import small_log

pytestmark = pytest.mark.django_db(transaction=True)
#: Generated requests per operation in the fuzzing phase (besides the examples and the deterministic coverage cases).
MAX_EXAMPLES = 10
SEED = 20261201
#: Also: POST and DELETE on every path (a read-only API answers 405), and each query parameter given twice.
CONFIG = """
[phases.coverage]
unexpected-methods = ["post", "delete"]
generate-duplicate-query-parameters = true
"""


def _schemathesis(live_server, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    report = tmp_path / "report.json"
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{live_server.url}/api/schema/?format=json",
        "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1",
        "--no-color", "--report", "json", "--report-json-path", str(report), *args,
    ]
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
    result = subprocess.run(command, capture_output=True, text=True, timeout=540, env=env, cwd=tmp_path)
    return result, (json.loads(report.read_text()) if report.exists() else {})


@pytest.fixture
def api(live_server, settings):
    settings.BT_BOOTSTRAP_ROUNDS = 5
    small_log()
    return live_server


def test_the_api_answers_every_generated_request_as_its_schema_says(api, tmp_path):
    """With a token, so the vote log answers 200 too; schemathesis' ignored_auth check sends requests again without
    it (and with a broken one) and expects the 401 the schema promises."""
    token = Token.objects.create(user=get_user_model().objects.create_user("fuzz-reader"))
    result, report = _schemathesis(api, tmp_path, "--header", f"Authorization: Token {token.key}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert report["operations"]["tested"] == report["operations"]["total"] == 8, report["operations"]
    cases = report["test_cases"]
    assert cases["with_failures"] == 0 and cases["errored"] == 0 and cases["generated"] >= 200, cases
    print(f"schemathesis: {cases['generated']} requests to {report['operations']['tested']} operations, "
          f"{report['running_time']:.1f} s")
