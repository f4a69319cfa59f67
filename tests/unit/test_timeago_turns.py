"""timeago_turns: the moment a time shown in words ("3 minutes ago") next reads differently,
which a page's version holds until. Checked against timeago itself, past and to come."""
from datetime import UTC, datetime, timedelta

import pytest

from portal.filters import timeago, timeago_turns

SHOWN = datetime(2026, 12, 6, 12, 0, 30, 250000, tzinfo=UTC)
AGES = [0, 0.5, 9.9, 10, 10.4, 42, 59.99, 60, 61, 119, 150.7, 3599, 3600, 3601.5, 7300, 86399, 86400, 90000,
        3 * 86400 + 5]


@pytest.mark.parametrize("age", AGES)
def test_the_words_hold_until_the_turn_and_change_at_it(age):
    now = SHOWN + timedelta(seconds=age)
    turn = timeago_turns(SHOWN, now)
    assert turn > now
    words = timeago(SHOWN, now)
    # Unchanged from now to just before the turn, different at it.
    for moment in (now, turn - (turn - now) / 2, turn - timedelta(microseconds=1)):
        assert timeago(SHOWN, moment) == words, (age, moment)
    assert timeago(SHOWN, turn) != words, (age, turn)


def test_minutes_turn_with_the_time_shown_not_with_the_clock():
    now = SHOWN + timedelta(minutes=5, seconds=10)  # 12:05:40.25: "5 minutes ago"
    assert timeago_turns(SHOWN, now) == SHOWN + timedelta(minutes=6)  # 12:06:30.25, not 12:06:00


@pytest.mark.parametrize("ahead", [0.5, 1, 1.5, 30, 59.9, 60, 61, 119.5, 125, 3599, 3600, 3700, 86400, 90000])
def test_a_time_to_come_counts_down_the_same_way(ahead):
    """A device's clock a little ahead: "in 3 minutes", then "in 2 minutes" ... "just now"."""
    now = SHOWN - timedelta(seconds=ahead)
    turn = timeago_turns(SHOWN, now)
    assert turn > now
    words = timeago(SHOWN, now)
    for moment in (now, turn - (turn - now) / 2, turn - timedelta(microseconds=1)):
        if moment < turn:  # at exactly n units ahead the words hold for that instant only
            assert timeago(SHOWN, moment) == words, (ahead, moment)
    assert timeago(SHOWN, turn) != words, (ahead, turn)
