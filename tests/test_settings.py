"""Production settings (issue 10): ARENA_PRODUCTION=1 turns on HTTPS (redirect, HSTS, secure cookies) and
``manage.py check --deploy`` is clean; each switch can be set on its own; a malformed value stops start-up.

check --deploy runs in a subprocess with the production environment, as CI would run it; the settings module is also
evaluated afresh in this process under each environment to read what it sets."""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = {"ARENA_PRODUCTION": "1", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "arena.example.org"}
BEHIND_PROXY = {**PRODUCTION, "SECURE_SSL_REDIRECT": "0", "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO=https"}
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


def _settings(monkeypatch, **extra: str) -> SimpleNamespace:
    """config/settings.py evaluated afresh under an environment (in this process; Django's own settings untouched)."""
    for name in [k for k in os.environ if k.startswith(_TEST_ONLY)]:
        monkeypatch.delenv(name)
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("settings_probe", ROOT / "config" / "settings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return SimpleNamespace(**{k: getattr(module, k) for k in _SHOWN})


def test_check_deploy_is_clean_in_production():
    result = _deploy_check(**PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_without_production():
    result = _deploy_check(SECRET_KEY=PRODUCTION["SECRET_KEY"])
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):  # HSTS, redirect, cookies
        assert check in result.stderr + result.stdout, check


def test_production_turns_on_https_and_each_switch_stands_alone(monkeypatch):
    on = _settings(monkeypatch, **PRODUCTION)
    assert on.SECURE_SSL_REDIRECT and on.SECURE_HSTS_SECONDS == 365 * 24 * 3600
    assert on.SECURE_HSTS_INCLUDE_SUBDOMAINS and on.SECURE_HSTS_PRELOAD
    assert on.SESSION_COOKIE_SECURE and on.CSRF_COOKIE_SECURE and on.SECURE_PROXY_SSL_HEADER is None
    assert on.SILENCED_SYSTEM_CHECKS == [] and on.DEBUG is False
    proxied = _settings(monkeypatch, **BEHIND_PROXY)
    assert proxied.SECURE_SSL_REDIRECT is False and proxied.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")
    assert proxied.SILENCED_SYSTEM_CHECKS == ["security.W008"]  # the proxy redirects: the check may say so
    one = _settings(monkeypatch, **PRODUCTION, SECURE_HSTS_PRELOAD="0", SECURE_COOKIES="0")
    assert one.SECURE_HSTS_PRELOAD is False and one.SESSION_COOKIE_SECURE is False and one.SECURE_SSL_REDIRECT
    off = _settings(monkeypatch)
    assert not off.SECURE_SSL_REDIRECT and off.SECURE_HSTS_SECONDS == 0 and not off.SESSION_COOKIE_SECURE


def test_behind_a_proxy_that_redirects_check_deploy_is_clean_too():
    result = _deploy_check(**BEHIND_PROXY)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("extra, message", [
    ({"DEBUG": "1"}, "DEBUG=1 cannot be used"),
    ({"SECRET_KEY": ""}, "SECRET_KEY must be set"),
    ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS must name"),
    ({"SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto: https"}, "must look like HTTP_X_FORWARDED_PROTO=https"),
    ({"SECURE_HSTS_SECONDS": "٣٦٠٠"}, "is not an integer"),
    ({"RATELIMIT_IP": "lots"}, "is not a rate"),
])
def test_a_bad_production_environment_stops_start_up_with_a_message(monkeypatch, extra, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        _settings(monkeypatch, **{**PRODUCTION, **extra})


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
