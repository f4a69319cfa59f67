"""Benchmark fixtures: the tests' app factory and helpers, a plain skip without PostgreSQL,
and `soft_target`, which records a benchmark's target and warns on a miss (fails only with
IOTLOCK_BENCH_STRICT=1)."""
import os
import warnings

import pytest

from portal.extensions import db
from tests.conftest import (
    PG_URL,
    _empty_all,
    _make_app,
    app_overrides,  # noqa: F401  (fixture)
    pg_database_url,  # noqa: F401  (fixture)
    sqlite_app,  # noqa: F401  (fixture)
)

# The tests' household fixtures, by module name (already registered when tests/ runs too).
pytest_plugins = ["tests.plugins.accounts"]

STRICT = os.environ.get("IOTLOCK_BENCH_STRICT") == "1"


class SoftTargetMissed(UserWarning):
    """A benchmark's median missed its soft target (indicative on a shared machine)."""


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    # A plain skip even in CI: benchmarks measure, they never gate a run.
    if request.param == "postgresql" and not PG_URL:
        pytest.skip("PostgreSQL benchmarks need TEST_DATABASE_URL")
    return request.param


@pytest.fixture
def app(backend, tmp_path, request, app_overrides):  # noqa: F811  (the imported fixture)
    """The tests' app on SQLite or PostgreSQL, with an app context pushed (and a module's
    `app_overrides`, as in the tests)."""
    overrides = dict(app_overrides)
    if backend == "postgresql":
        # Our own private database. The factory's "sqlite" branch only runs create_all,
        # which makes the schema here once without touching the tests' once-per-run flag
        # (so `pytest tests benchmarks` keeps both databases right).
        overrides["SQLALCHEMY_DATABASE_URI"] = request.getfixturevalue("pg_database_url")
    app = _make_app("sqlite", tmp_path, request, **overrides)
    ctx = app.app_context()
    ctx.push()
    yield app
    db.session.remove()
    ctx.pop()
    if backend == "postgresql":
        _empty_all(app)
    else:
        with app.app_context():
            db.engine.dispose()


def median(benchmark) -> float | None:
    """The median seconds of the run (None under --benchmark-disable)."""
    stats = getattr(benchmark, "stats", None)
    return stats.stats.median if stats else None


def soft_target(benchmark, seconds: float) -> None:
    """Record the soft target; a missed one warns (fails only with IOTLOCK_BENCH_STRICT=1)."""
    measured = median(benchmark)
    benchmark.extra_info["soft_target_ms"] = round(seconds * 1000, 3)
    if measured is None:
        return
    benchmark.extra_info["median_ms"] = round(measured * 1000, 3)
    if measured > seconds:
        message = f"median {measured * 1000:.1f} ms is over the soft target of {seconds * 1000:.1f} ms"
        if STRICT:
            pytest.fail(message)
        warnings.warn(message, SoftTargetMissed, stacklevel=2)
