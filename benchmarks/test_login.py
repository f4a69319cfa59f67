"""The CPU cost of one login: verify_password with the PRODUCTION argon2id parameters.

Tests use a cheap cost (TestConfig); this module's app takes ARGON2_TIME_COST,
ARGON2_MEMORY_COST and ARGON2_PARALLELISM from config.ProductionConfig (the values of
config.Config, from the environment or the RFC 9106 defaults 3 / 64 MiB / 4 lanes). An
unknown email costs the same (verify_password hashes instead), so this is the CPU every
login attempt takes, successful or not.

Soft target (median, on a 2-core development machine): between 50 ms and 300 ms. Slower
ties up a web worker and invites a cheap CPU-exhaustion attack on /login; faster than
50 ms means the cost parameters were weakened.
"""
import time

import pytest

from config import ProductionConfig, TestConfig
from portal import crypto
from tests.plugins.accounts import PASSWORD

from .conftest import median, soft_target

COSTS = {
    "ARGON2_TIME_COST": ProductionConfig.ARGON2_TIME_COST,
    "ARGON2_MEMORY_COST": ProductionConfig.ARGON2_MEMORY_COST,
    "ARGON2_PARALLELISM": ProductionConfig.ARGON2_PARALLELISM,
}


@pytest.fixture
def app_overrides():
    return dict(COSTS)


def test_login_verify_password_production_cost(benchmark, sqlite_app):
    assert COSTS["ARGON2_MEMORY_COST"] > TestConfig.ARGON2_MEMORY_COST  # not the tests' cheap cost
    stored = crypto.hash_password(PASSWORD)
    assert stored.startswith(
        f"$argon2id$v=19$m={COSTS['ARGON2_MEMORY_COST']},t={COSTS['ARGON2_TIME_COST']},"
        f"p={COSTS['ARGON2_PARALLELISM']}$"
    )

    ok = benchmark.pedantic(crypto.verify_password, args=(stored, PASSWORD), rounds=10, iterations=1,
                            warmup_rounds=1)

    assert ok is True
    benchmark.extra_info.update({k.lower(): v for k, v in COSTS.items()})
    # CPU seconds, not wall: what a login takes from the web server's cores.
    cpu = []
    for _ in range(5):
        start = time.process_time()
        crypto.verify_password(stored, PASSWORD)
        cpu.append(time.process_time() - start)
    benchmark.extra_info["cpu_ms"] = round(sorted(cpu)[2] * 1000, 1)
    if median(benchmark) and median(benchmark) < 0.050:
        benchmark.extra_info["note"] = "under 50 ms: are the production cost parameters weakened?"
    soft_target(benchmark, 0.300)
