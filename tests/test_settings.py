"""Production settings (issue 10): ARENA_PRODUCTION=1 turns on HTTPS (redirect, HSTS, secure cookies) and
``manage.py check --deploy`` is clean; each switch can be set on its own; a malformed value stops start-up.

The settings module is read once per process, so each environment runs in a subprocess of its own."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = {"ARENA_PRODUCTION": "1", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "arena.example.org"}
_SHOWN = ("SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
          "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SILENCED_SYSTEM_CHECKS", "DEBUG")


#: Set by the test process, never by a deployment (the browser tests allow Playwright's event loop with it).
_TEST_ONLY = ("SECURE_", "ARENA_PRODUCTION", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_TEST_ONLY)}
    env.update({"PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "config.settings"}, **extra)
    return env


def _deploy_check(**extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=_env(**extra), capture_output=True, text=True, timeout=120)


def _settings(**extra: str) -> subprocess.CompletedProcess:
    code = ("import json, django; django.setup(); from django.conf import settings; "
            f"print(json.dumps({{k: getattr(settings, k) for k in {_SHOWN!r}}}))")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(**extra), capture_output=True, text=True,
                          timeout=120)


def test_check_deploy_is_clean_in_production():
    result = _deploy_check(**PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_without_production():
    result = _deploy_check(SECRET_KEY=PRODUCTION["SECRET_KEY"])
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):  # HSTS, redirect, cookies
        assert check in result.stderr + result.stdout, check


def test_production_turns_on_https_and_each_switch_stands_alone():
    on = json.loads(_settings(**PRODUCTION).stdout)
    assert on["SECURE_SSL_REDIRECT"] and on["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert on["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and on["SECURE_HSTS_PRELOAD"]
    assert on["SESSION_COOKIE_SECURE"] and on["CSRF_COOKIE_SECURE"] and on["SECURE_PROXY_SSL_HEADER"] is None
    behind_proxy = {**PRODUCTION, "SECURE_SSL_REDIRECT": "0", "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO=https"}
    proxied = json.loads(_settings(**behind_proxy).stdout)
    assert proxied["SECURE_SSL_REDIRECT"] is False and proxied["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert proxied["SILENCED_SYSTEM_CHECKS"] == ["security.W008"]  # the proxy redirects: the check may say so
    assert _deploy_check(**behind_proxy).returncode == 0
    off = json.loads(_settings().stdout)
    assert not off["SECURE_SSL_REDIRECT"] and off["SECURE_HSTS_SECONDS"] == 0 and not off["SESSION_COOKIE_SECURE"]


@pytest.mark.parametrize("extra, message", [
    ({"DEBUG": "1"}, "DEBUG=1 cannot be used"),
    ({"SECRET_KEY": ""}, "SECRET_KEY must be set"),
    ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS must name"),
    ({"SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto: https"}, "must look like HTTP_X_FORWARDED_PROTO=https"),
    ({"SECURE_HSTS_SECONDS": "٣٦٠٠"}, "is not an integer"),
    ({"RATELIMIT_IP": "lots"}, "is not a rate"),
])
def test_a_bad_production_environment_stops_start_up_with_a_message(extra, message):
    result = _settings(**{**PRODUCTION, **extra})
    assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]


@pytest.mark.django_db
def test_behind_a_tls_proxy_plain_http_is_redirected_and_https_gets_hsts():
    with override_settings(SECURE_SSL_REDIRECT=True, SECURE_HSTS_SECONDS=3600, SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
                           SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"), ALLOWED_HOSTS=["arena.example.org"]):
        client = Client(HTTP_HOST="arena.example.org")
        plain = client.get("/leaderboard/")
        assert plain.status_code == 301 and plain["Location"] == "https://arena.example.org/leaderboard/"
        secure = client.get("/leaderboard/", HTTP_X_FORWARDED_PROTO="https")
        assert secure.status_code == 200
        assert secure["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"
