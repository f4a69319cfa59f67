"""A PIN's rules: the add form's input checked on the field at fault, the words a member
reads, the state at a moment (windows are wall-clock in the PIN's zone, across summer
time), and what the box is sent. Pure: no database."""
from datetime import UTC, datetime, timedelta

import pytest

from portal.models import Pin
from portal.services import pin_rules
from portal.services.errors import ValidationFailed
from portal.streamiot import messages

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)  # a Monday, 10:30 in Berlin
BERLIN = "Europe/Berlin"
WEEKDAYS = {"days": [0, 1, 2, 3, 4], "from": "08:00", "until": "18:00"}


def rules(**given):
    given.setdefault("time_zone", BERLIN)
    return pin_rules.check_rules(now=NOW, **given)


def refused(**given) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        rules(**given)
    return caught.value


def pin(**columns) -> Pin:
    columns.setdefault("status", "active")
    columns.setdefault("time_zone", BERLIN)
    columns.setdefault("uses", 0)
    return Pin(**columns)


def made(**given) -> Pin:
    checked = rules(**given)
    return pin(starts_at=checked.starts_at, ends_at=checked.ends_at, windows=checked.windows,
               max_uses=checked.max_uses)


# --- the form's input ------------------------------------------------------------------------

def test_always_has_no_rules_whatever_else_the_form_sent():
    assert rules(kind="always", ends="2020-01-01T00:00", uses="0").always


def test_times_are_read_in_the_household_zone_and_kept_in_utc():
    checked = rules(kind="range", starts="2026-12-08T08:00", ends="2026-12-11T18:00")
    assert checked.starts_at == datetime(2026, 12, 8, 7, 0, tzinfo=UTC)
    assert checked.ends_at == datetime(2026, 12, 11, 17, 0, tzinfo=UTC)
    in_summer = rules(kind="range", ends="2027-07-01T18:00")
    assert in_summer.ends_at == datetime(2027, 7, 1, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize("starts,ends", [("2026-12-11T18:00", "2026-12-08T08:00"),
                                         ("2026-12-11T18:00", "2026-12-11T18:00")])
def test_an_end_before_or_at_the_start_is_refused_on_the_end(starts, ends):
    problem = refused(kind="range", starts=starts, ends=ends)
    assert (problem.field, problem.message) == ("ends", "The end must come after the start.")


def test_an_end_that_has_passed_is_refused_on_the_end():
    problem = refused(kind="once", ends="2026-12-07T10:00")  # 09:00 UTC, half an hour ago
    assert problem.field == "ends" and "passed" in problem.message


@pytest.mark.parametrize("field", ["starts", "ends"])
def test_a_date_that_is_not_one_is_refused_on_its_field(field):
    assert refused(kind="range", **{field: "next tuesday"}).field == field


def test_a_range_needs_a_start_or_an_end():
    assert refused(kind="range").field == "ends"


def test_windows_are_stored_as_weekday_flags_and_24_00_ends_a_day():
    checked = rules(kind="weekly", windows=[WEEKDAYS, {"days": ["5", "6"], "from": "10:00", "until": "24:00"}])
    assert checked.windows == [{"days": "1111100", "from": "08:00", "until": "18:00"},
                               {"days": "0000011", "from": "10:00", "until": "24:00"}]


@pytest.mark.parametrize("window", [
    {"days": [], "from": "08:00", "until": "18:00"},
    {"days": [0], "from": "18:00", "until": "08:00"},
    {"days": [0], "from": "08:00", "until": "08:00"},
])
def test_an_empty_window_is_refused_on_the_windows(window):
    problem = refused(kind="weekly", windows=[window])
    assert problem.field == "windows" and "empty" in problem.message


@pytest.mark.parametrize("window", [
    {"days": [7], "from": "08:00", "until": "18:00"},
    {"days": [0], "from": "8 am", "until": "18:00"},
    {"days": [0], "from": "24:00", "until": "24:00"},
    "Mon-Fri",
])
def test_a_window_that_is_not_one_is_refused_on_the_windows(window):
    assert refused(kind="weekly", windows=[window]).field == "windows"


def test_more_than_16_windows_are_refused_and_16_are_fine():
    assert len(rules(kind="weekly", windows=[WEEKDAYS] * 16).windows) == 16
    problem = refused(kind="weekly", windows=[WEEKDAYS] * 17)
    assert problem.field == "windows" and "at most 16" in problem.message


def test_weekly_needs_a_window():
    assert refused(kind="weekly", windows=[]).field == "windows"


@pytest.mark.parametrize("uses,why", [(0, "at least once"), ("1001", "at most 1000"), ("three", "a number"),
                                      ("", "how many"), (True, "a number")])
def test_a_use_count_out_of_range_or_not_a_number_is_refused_on_uses(uses, why):
    problem = refused(kind="uses", uses=uses)
    assert problem.field == "uses" and why in problem.message


def test_uses_from_1_to_1000_and_once_is_one_use():
    assert rules(kind="uses", uses="1000").max_uses == 1000
    assert rules(kind="uses", uses=1).max_uses == 1
    assert rules(kind="once", uses="7").max_uses == 1


def test_an_unknown_kind_is_refused_on_the_kind():
    assert refused(kind="sometimes").field == "kind"


def test_every_kind_but_always_takes_the_other_fields_too():
    checked = rules(kind="weekly", windows=[WEEKDAYS], ends="2026-12-31T00:00", uses="3")
    assert checked.windows and checked.ends_at and checked.max_uses == 3


# --- words -----------------------------------------------------------------------------------

@pytest.mark.parametrize("given,words", [
    ({"kind": "always"}, "Works always"),
    ({"kind": "uses", "uses": 3}, "Works 3 times"),
    ({"kind": "once"}, "Works once"),
    ({"kind": "once", "ends": "2026-12-11T18:00"}, "Works once, until Fri 11 Dec 18:00"),
    ({"kind": "weekly", "windows": [WEEKDAYS], "ends": "2026-12-31T00:00"},
     "Works Mon-Fri 08:00-18:00, until Thu 31 Dec 00:00"),
    ({"kind": "range", "starts": "2026-12-08T08:00", "ends": "2027-01-04T18:00"},
     "Works from Tue 8 Dec 08:00 until Mon 4 Jan 2027 18:00"),
    ({"kind": "weekly", "windows": [{"days": [0, 2, 4], "from": "07:00", "until": "09:30"},
                                    {"days": [5, 6], "from": "10:00", "until": "24:00"}]},
     "Works Mon, Wed, Fri 07:00-09:30, Sat, Sun 10:00-24:00"),
    ({"kind": "weekly", "windows": [{"days": range(7), "from": "06:00", "until": "22:00"}]},
     "Works every day 06:00-22:00"),
])
def test_rules_in_plain_words_in_the_household_zone(given, words):
    assert pin_rules.preview(time_zone=BERLIN, now=NOW, **given) == words
    assert pin_rules.describe(made(**given), NOW) == words


# --- the state at a moment ------------------------------------------------------------------

def test_the_state_of_a_pin_over_its_life():
    weekdays_until_friday = made(kind="weekly", windows=[WEEKDAYS], starts="2026-12-08T00:00",
                                 ends="2026-12-12T00:00")
    at = {
        datetime(2026, 12, 7, 12, 0, tzinfo=UTC): "scheduled",
        datetime(2026, 12, 8, 6, 59, tzinfo=UTC): "outside its hours",  # 07:59 in Berlin
        datetime(2026, 12, 8, 7, 0, tzinfo=UTC): "active",
        datetime(2026, 12, 8, 16, 59, tzinfo=UTC): "active",
        datetime(2026, 12, 8, 17, 0, tzinfo=UTC): "outside its hours",  # until is exclusive
        datetime(2026, 12, 11, 23, 0, tzinfo=UTC): "expired",
    }
    assert {moment: pin_rules.rule_state(weekdays_until_friday, moment) for moment in at} == at
    assert pin_rules.allowed_now(weekdays_until_friday, datetime(2026, 12, 9, 10, 0, tzinfo=UTC))
    assert not pin_rules.allowed_now(weekdays_until_friday, NOW)


def test_a_pin_is_used_up_after_its_last_use_and_removed_once_removed():
    assert pin_rules.rule_state(pin(max_uses=3, uses=2), NOW) == "active"
    assert pin_rules.rule_state(pin(max_uses=3, uses=3), NOW) == "used up"
    assert pin_rules.rule_state(pin(status="removing"), NOW) == "removed"
    assert pin_rules.rule_state(pin(status="removed", ended="expired"), NOW) == "expired"


def test_windows_keep_the_wall_clock_across_summer_time():
    weekdays = pin(windows=[{"days": "1111100", "from": "08:00", "until": "18:00"}])
    # Berlin moves to summer time on Sunday 29 March 2026: 08:00 is 07:00 UTC before, 06:00 after.
    assert pin_rules.rule_state(weekdays, datetime(2026, 3, 27, 6, 30, tzinfo=UTC)) == "outside its hours"
    assert pin_rules.rule_state(weekdays, datetime(2026, 3, 27, 7, 0, tzinfo=UTC)) == "active"
    assert pin_rules.rule_state(weekdays, datetime(2026, 3, 30, 6, 0, tzinfo=UTC)) == "active"
    assert pin_rules.rule_state(weekdays, datetime(2026, 3, 30, 5, 59, tzinfo=UTC)) == "outside its hours"


def test_a_window_until_midnight_covers_the_last_minute_of_the_day():
    evenings = pin(windows=[{"days": "0000001", "from": "20:00", "until": "24:00"}], time_zone="UTC")
    sunday = datetime(2026, 12, 13, 23, 59, tzinfo=UTC)
    assert pin_rules.allowed_now(evenings, sunday)
    assert not pin_rules.allowed_now(evenings, sunday + timedelta(minutes=1))  # Monday 00:00


# --- what the box gets ------------------------------------------------------------------------

def test_the_box_gets_epoch_times_windows_in_its_zone_uses_and_the_role():
    courier = made(kind="once", windows=[WEEKDAYS], starts="2026-12-08T08:00", ends="2026-12-11T18:00")
    courier.purpose = "courier"
    sent = messages.BoxRules(**pin_rules.box_rules(courier))
    assert sent == messages.BoxRules(starts=1796713200, ends=1797008400, zone="CET-1CEST,M3.5.0,M10.5.0/3",
                                     windows=("1111100 08:00-18:00",), uses=1, role="courier")
    assert {"n": "ROLE", "vs": "courier"} in messages.rule_records(sent)


def test_a_pin_that_always_works_sends_no_rules_and_duress_says_so():
    assert messages.rule_records(messages.BoxRules(**pin_rules.box_rules(pin(purpose="household")))) == []
    duress = messages.rule_records(messages.BoxRules(**pin_rules.box_rules(pin(purpose="duress"))))
    assert duress == [{"n": "ROLE", "vs": "duress"}]
