"""schemathesis against the served document (/api/v1/openapi.json), in process over WSGI,
authenticated with a token of every scope, over every operation: no server error, every
answer (status, media type, headers, body) as the document declares it. Bounded (a few
examples an operation) so CI stays quick; SCHEMATHESIS_EXAMPLES raises it locally.

schemathesis's own pytest plugin does not run under pytest 9 yet, so the operations are
walked here, each with its hypothesis strategy."""
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.rollback

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "8"))
# Path parameters -> the world's object of household A: the examples reach real rows
# (random ids would only ever meet 404).
WORLD_IDS = {"gateway_id": "gateway", "box_id": "mailbox", "pin_id": "pin", "unlock_id": "unlock",
             "webhook_id": "webhook", "delivery_id": "webhook_delivery", "membership_id": "membership",
             "invite_id": "invite"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


def test_every_operation_answers_as_the_document_says(app, world, monkeypatch):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {world.a['api_secret']}"}
    # This test is the only client: its examples are not a flood to hold back.
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", 1_000_000)
    answered: dict[int, int] = {}
    operations, failures = 0, []
    # Removals last, so the other operations meet the world's rows as they were.
    every = sorted((result.ok() for result in schema.get_all_operations()), key=lambda op: op.method == "delete")
    for operation in every:
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            for name in case.path_parameters or {}:
                case.path_parameters[name] = world.id_of(WORLD_IDS[name])
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            answered[response.status_code] = answered.get(response.status_code, 0) + 1

        try:
            run()
        except Exception as exc:  # noqa: BLE001  (every operation's failure is reported together)
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 29
    assert not failures, "\n\n".join(failures)
    assert sum(n for status, n in answered.items() if status < 300) >= operations, answered


def test_following_the_documents_links_answers_as_it_says(app, world, monkeypatch):
    """Stateful: schemathesis chains operations along the document's links (add a gateway,
    then read, rename, remove it; add a box, then its PINs, a delivery code, an unlock...)."""
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", 1_000_000)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {world.a['api_secret']}"}
    calls: list[str] = []

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case):
            case.headers = {**(case.headers or {}), **headers}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            calls.append(f"{case.operation.method.upper()} {case.operation.path} {response.status_code}")
            case.validate_response(response, checks=CHECKS)

    Machine.TestCase.settings = settings(max_examples=max(2, EXAMPLES // 2), stateful_step_count=6, deadline=None,
                                         derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    Machine.TestCase().runTest()
    # Some steps reached an object made or found by an earlier step, and it answered.
    assert [c for c in calls if "{" in c.split()[1] and int(c.split()[2]) < 300], calls
