"""Targets of the StreamIoT contract suite: the emulator over HTTP, and maybe a deployment.

The emulator is served over real HTTP in every run; a real deployment is checked too when
STREAMIOT_CONTRACT_URL and STREAMIOT_CONTRACT_READER_URL are set. Every check speaks
plain `requests`, never the portal's client.

Against a deployment the suite registers throwaway users with random addresses (with the
token of STREAMIOT_CONTRACT_ADMIN_EMAIL/_PASSWORD when self-registration is off) and
deletes the things and channels it created.
"""
import os
import uuid

import pytest

from portal.streamiot.emulator import make_emulator
from portal.streamiot.emulator.server import serve_in_thread
from tests.contract.checks import Target

CONTRACT_URL = os.environ.get("STREAMIOT_CONTRACT_URL", "").rstrip("/")
CONTRACT_READER_URL = os.environ.get("STREAMIOT_CONTRACT_READER_URL", "").rstrip("/")
CONTRACT_ADMIN = (
    os.environ.get("STREAMIOT_CONTRACT_ADMIN_EMAIL", ""),
    os.environ.get("STREAMIOT_CONTRACT_ADMIN_PASSWORD", ""),
)


@pytest.fixture(scope="session")
def contract_emulator(tmp_path_factory):
    served = serve_in_thread(make_emulator(tmp_path_factory.mktemp("contract") / "streamiot.sqlite3"))
    yield served
    served.stop()


@pytest.fixture(scope="session")
def contract_targets():
    return {}


@pytest.fixture(params=["emulator", "deployment"])
def target(request, contract_targets):
    """The StreamIoT under test: the emulator over HTTP, or the deployment named by
    STREAMIOT_CONTRACT_URL / STREAMIOT_CONTRACT_READER_URL."""
    if request.param not in contract_targets:
        if request.param == "emulator":
            served = request.getfixturevalue("contract_emulator")
            contract_targets["emulator"] = Target("emulator", served.url, served.reader_url)
        else:
            if not (CONTRACT_URL and CONTRACT_READER_URL):
                # CI points these at a StreamIoT started as a separate process (.ci/run).
                from tests.conftest import skip_or_fail

                skip_or_fail("no deployment: set STREAMIOT_CONTRACT_URL and STREAMIOT_CONTRACT_READER_URL")
            contract_targets["deployment"] = Target(
                "deployment", CONTRACT_URL, CONTRACT_READER_URL, CONTRACT_ADMIN
            )
    chosen = contract_targets[request.param]
    yield chosen
    chosen.cleanup()


@pytest.fixture
def tag():
    """A unique name prefix, so tests sharing a user never see each other's objects."""
    return f"ctr-{uuid.uuid4().hex[:10]}"
