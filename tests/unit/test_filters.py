"""Reasons the worker recorded, as household pages show them."""
import pytest

from portal.filters import code_spans, household_words


@pytest.mark.parametrize(("recorded", "shown"), [
    ("StreamIoT answered POST /things/abc with 500 (gave up after 12 attempts)",
     "The device service answered a request with 500 (gave up after 12 attempts)"),
    ("Trying again: StreamIoT is not answering", "Trying again: the device service is not answering"),
    ("The box's channel is not set up yet; retry the box.", "The box's private line is not set up yet; retry the box."),
    ("A thing of another user", "A device of another user"),
    ("The gateway refused AUTH", "The gateway refused a message"),
    ("StreamIoT could not be reached (POST /users)", "The device service could not be reached (a request)"),
    ("slots full", "slots full"),  # the box's own words stay as they are
    (None, ""),
])
def test_worker_reasons_read_in_household_words(recorded, shown):
    assert household_words(recorded) == shown


def test_backticked_words_become_code_and_the_rest_stays_escaped():
    assert str(code_spans("Send `Idempotency-Key` <b>once</b>")) == (
        "Send <code>Idempotency-Key</code> &lt;b&gt;once&lt;/b&gt;")
    assert str(code_spans("`<script>`")) == "<code>&lt;script&gt;</code>"
