"""When a failed job attempt is tried again, and what reason people are shown."""
import random

import pytest

from portal.jobs.errors import PermanentFailure, RetryLater, judge
from portal.jobs.runner import backoff_delay, retry_delay
from portal.streamiot import errors as sie

CONFIG = {"JOB_BACKOFF_BASE": 1.0, "JOB_BACKOFF_CAP": 300.0}


class Highest:
    """An rng that always picks the top of the jitter window."""

    def uniform(self, low, high):
        return high


class Lowest:
    def uniform(self, low, high):
        return low


@pytest.mark.parametrize("attempt, window", [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (9, 256.0)])
def test_backoff_window_doubles_with_each_attempt(attempt, window):
    assert backoff_delay(attempt, 1.0, 300.0, Highest()) == window


def test_backoff_window_is_capped():
    assert backoff_delay(10, 1.0, 300.0, Highest()) == 300.0
    assert backoff_delay(5000, 1.0, 300.0, Highest()) == 300.0


def test_backoff_uses_full_jitter_from_zero():
    assert backoff_delay(8, 1.0, 300.0, Lowest()) == 0.0
    rng = random.Random(7)
    delays = [backoff_delay(4, 1.0, 300.0, rng) for _ in range(500)]
    assert all(0.0 <= d <= 8.0 for d in delays)
    # Spread over the whole window, not bunched at its top like "equal jitter".
    assert min(delays) < 1.0 and max(delays) > 7.0


def test_backoff_base_zero_retries_at_once():
    assert backoff_delay(7, 0.0, 300.0, Highest()) == 0.0


def test_retry_after_from_streamiot_is_a_minimum():
    verdict = judge(sie.Unavailable("StreamIoT is unavailable (POST /things answered 503)", status=503, retry_after=90))
    assert retry_delay(verdict, 1, CONFIG, Highest()) == 90.0
    # A backoff already longer than Retry-After is kept.
    assert retry_delay(verdict, 12, CONFIG, Highest()) == 300.0


def test_retry_later_delay_replaces_the_backoff():
    verdict = judge(RetryLater("waiting for the household's link to StreamIoT", delay=30))
    assert verdict.retry
    assert retry_delay(verdict, 9, CONFIG, Highest()) == 30.0


def test_bad_request_is_never_retried():
    verdict = judge(
        sie.BadRequest("StreamIoT refused POST /users (400: password does not meet the requirements)", status=400)
    )
    assert not verdict.retry
    assert "password does not meet the requirements" in verdict.reason


def test_permanent_failure_is_never_retried():
    verdict = judge(PermanentFailure("The mailbox was removed before its PIN was sent"))
    assert (verdict.retry, verdict.reason) == (False, "The mailbox was removed before its PIN was sent")


@pytest.mark.parametrize(
    "error",
    [
        sie.Unavailable("StreamIoT could not be reached (POST /things)"),
        sie.ServerError("StreamIoT failed on GET /things/x (500 with an empty body)", status=500),
        sie.ProtocolError("StreamIoT answered POST /things with 201 but no usable Location", status=201),
        sie.Unauthorized("StreamIoT refused POST /tokens (401)", status=401),
    ],
)
def test_errors_that_may_pass_later_are_retried_with_their_plain_reason(error):
    verdict = judge(error)
    assert verdict.retry
    assert verdict.reason == str(error)


def test_unexpected_error_reason_names_only_its_type():
    verdict = judge(KeyError("thing key 6f1c2d0e-secret"))
    assert verdict.retry and verdict.unexpected
    assert "KeyError" in verdict.reason
    assert "secret" not in verdict.reason
