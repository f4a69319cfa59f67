"""Reading what a box that keeps rules says: each event one report, the records that explain
it (REASON, LEFT, DURESS, SECOND) joined to it and never reports of their own."""
from portal.jobs.handlers.reports import to_reports
from portal.services.device_reports import ReportKind
from portal.streamiot import messages

G = "gw-thing"
NOW = 1_767_225_600.0  # 2026-01-01


def _read(*packs, publisher=G):
    """The packs as the reader returns them: one time per pack, numbers stored as floats."""
    found = []
    for n, pack in enumerate(packs):
        for message in messages.parse_pack(pack, now=NOW + n):
            if "value" in message:
                message["value"] = float(message["value"])
            found.append({**message, "publisher": publisher})
    return found


def _reports(*packs):
    return [(r.kind, r.name, r.value, r.reason, r.left, r.duress, r.second) for r in to_reports(_read(*packs), NOW + 60)]


def test_an_opened_pack_carries_opens_left_duress_and_the_first_of_two_pins():
    assert _reports(
        messages.opened_with(G, 4821, left=2),
        messages.opened_with(G, "Ref12345", duress=True),
        messages.opened_with(G, "Ref22222", second="Ref11111"),
        messages.opened_with(G, 5827, second=4821, left=0),
    ) == [
        (ReportKind.OPENED, "OPENED", 4821, None, 2, False, None),
        (ReportKind.OPENED, "OPENED", "Ref12345", None, None, True, None),
        (ReportKind.OPENED, "OPENED", "Ref22222", None, None, False, "Ref11111"),
        (ReportKind.OPENED, "OPENED", 5827, None, 0, False, 4821),
    ]


def test_refusals_lockouts_and_first_pins_are_reports_with_their_reason():
    assert _reports(
        messages.refused(G, 4821, messages.OUTSIDE_HOURS),
        messages.refused(G, "Ref12345", messages.USED_UP),
        messages.locked_out(G, 1_767_230_000),
        messages.rejected_locked_out(G, 7),
        messages.rejected(G, 2),
        messages.first_of_two(G, "Ref12345"),
    ) == [
        (ReportKind.REFUSED, "REFUSED", 4821, "outside hours", None, False, None),
        (ReportKind.REFUSED, "REFUSED", "Ref12345", "used up", None, False, None),
        (ReportKind.LOCKOUT, "LOCKOUT", 1_767_230_000, None, None, False, None),
        (ReportKind.REJECTED, "REJECTED", 7, "locked out", None, False, None),
        (ReportKind.REJECTED, "REJECTED", 2, None, None, False, None),
        (ReportKind.FIRST, "FIRST", "Ref12345", None, None, False, None),
    ]


def test_a_safe_mode_answer_echoes_the_settings_version():
    sent = messages.safe_settings(G, 3, attempts=5, lockouts=[60, 300], dual_seconds=60)
    [done] = to_reports(_read(messages.reply(sent[0], True)), NOW + 60)
    [failed] = to_reports(_read(messages.reply(sent[0], False, "no room")), NOW + 60)
    assert (done.kind, done.name, done.value, done.done) == (ReportKind.ANSWER, "SAFE", 3, True)
    assert (failed.value, failed.done, failed.reason) == (3, False, "no room")


def test_a_sealed_pack_keeps_its_counter_on_the_report_it_carries():
    key, channel = b"k" * 32, "box-channel"
    pack = messages.signed(messages.opened_with(G, "Ref12345", left=4), channel, 9, key)
    reports = to_reports(_read(pack), NOW + 60, channel_id=channel, report_key=key)
    assert [(r.kind, r.value, r.left, r.counter) for r in reports] == [(ReportKind.OPENED, "Ref12345", 4, 9)]
