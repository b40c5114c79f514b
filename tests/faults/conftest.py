"""The fault tests start servers of their own (arena.benchmarks.servers): a PostgreSQL cluster made with initdb in a
temporary folder and a Redis without persistence, each on a free loopback port. They run in both suite passes
(they do not use the suite's database); skipped, with the reason, only where the binaries are not installed
(``scripts/test-services.sh`` installs them)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def drill_cluster():
    """A PostgreSQL of the tests' own with a migrated, seeded template database for the voting drills."""
    from arena.benchmarks import faults
    from arena.benchmarks.servers import LocalPostgres, ServiceMissing

    try:
        pg = LocalPostgres()
    except ServiceMissing as exc:
        pytest.skip(f"{exc}: the fault drills start a PostgreSQL of their own")
    media = Path(tempfile.mkdtemp(prefix="arena-drill-media-"))
    try:
        pg.start()
        yield faults.prepare(pg, media / "media")
    finally:
        pg.close()
        import shutil

        shutil.rmtree(media, ignore_errors=True)


@pytest.fixture
def local_redis():
    from arena.benchmarks.servers import LocalRedis, ServiceMissing

    try:
        redis = LocalRedis()
    except ServiceMissing as exc:
        pytest.skip(f"{exc}: the Redis fault tests start a Redis of their own")
    redis.start()
    try:
        yield redis
    finally:
        redis.close()
