"""`make run`'s `manage.py serve`: the web server and the local workers start together on a filesystem queue, the
block at the end names the port really served and the admin password, a task sent through the queue is run by
the worker, and one Ctrl-C (SIGINT) stops every process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def var_env(var_dir):
    tmp_path = var_dir
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER", "ARENA_CACHE_DIR")
           and not k.startswith("DJANGO_ALLOW")}
    env.update({"ARENA_VAR_DIR": str(tmp_path / "var"), "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "config.settings"})
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    subprocess.run([sys.executable, "manage.py", "seed_demo", "--no-images"], cwd=ROOT, env=env, check=True,
                   timeout=120, capture_output=True)
    return env


def test_serve_runs_the_site_and_a_worker_on_a_filesystem_queue_and_one_ctrl_c_stops_both(var_env, var_dir):
    tmp_path = var_dir
    port = _free_port()
    server = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT, env=var_env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops" in line:
                break
        block = "".join(lines)
        password = (tmp_path / "var" / "admin-password.txt").read_text().strip()
        assert f"http://127.0.0.1:{port}/" in block and password in block and "admin-password.txt" in block
        assert "8000" not in block
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/leaderboard/", timeout=20) as response:
            assert response.status == 200
        children = _children(server.pid)
        assert len(children) == 4  # gunicorn and three workers (default, gpu, train)
        # a task sent through the queue from another process is taken by the worker
        queue_in = tmp_path / "var" / "queue" / "in"
        env = {**var_env, "CELERY_BROKER_URL": "filesystem://localhost//", "CELERY_TASK_ALWAYS_EAGER": "0"}
        subprocess.run([sys.executable, "-c", "import django; django.setup(); from arena.tasks import apply_ratings; "
                        "apply_ratings.delay()"], cwd=ROOT, env=env, check=True, timeout=60)
        deadline = time.monotonic() + 30
        while any(queue_in.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(queue_in.iterdir()), "the worker did not take the message"
    finally:
        if server.poll() is None:
            for pid in [server.pid, *_children(server.pid)]:  # what a terminal's Ctrl-C does: the whole group
                try:
                    os.kill(pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        server.wait(timeout=60)
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in children)
    assert server.returncode == 0


def test_serve_stops_its_workers_when_it_is_killed_too(var_env):
    """`kill PID` (SIGTERM) of serve alone, as a service manager sends it, leaves no worker behind."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT, env=var_env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in server.stdout:
            if "Ctrl-C stops" in line:
                break
        children = _children(server.pid)
        assert len(children) == 4
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in children)


def test_serve_refuses_a_port_in_use_with_a_message(var_env):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run([sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT, env=var_env,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and f"{port} is in use" in result.stderr
    bad = subprocess.run([sys.executable, "manage.py", "serve"], cwd=ROOT, env={**var_env, "PORT": "80a"},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "PORT='80a' is not a port number" in bad.stderr
