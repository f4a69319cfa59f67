"""Views of a box's PINs with rules, delivery codes and safe mode (thin: read the form,
call one service, render). The rules themselves live in portal/services/pin_rules.py."""
from flask import abort, flash, g, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from portal.auth import actor, household_required
from portal.gateways.helpers import account_id, back, field_error, refuse, see_other, user
from portal.mailboxes import bp
from portal.mailboxes.forms import (
    WINDOW_ROWS_READ,
    AssignPinForm,
    DeliveryCodeForm,
    PinForm,
    SafeModeForm,
)
from portal.mailboxes.routes import _box_page, _page, box_url, pin_url
from portal.models import utcnow
from portal.services import mailboxes, pin_rules, pins, safe_mode
from portal.services.errors import ServiceError, ValidationFailed
from portal.urls import get_goes_to

# Which rule fields each kind of PIN reads (the others may hold what was typed before the
# kind changed: they are not sent).
KIND_FIELDS = {
    "always": (),
    "range": ("starts", "ends"),
    "weekly": ("windows", "ends"),
    "uses": ("uses", "ends"),
    "once": ("ends",),
}


def posted_windows(formdata: MultiDict) -> list[dict]:
    """The window rows of the add-PIN form that hold anything: days (0 = Monday), from and
    until ("HH:MM"; an until of 00:00 after a start means midnight, 24:00)."""
    rows: list[dict] = []
    if not any(key.startswith("w-") for key in formdata):
        return rows  # no window row sent (a PIN of another kind, from a script or the API)
    for i in range(WINDOW_ROWS_READ):
        days = sorted({int(d) for d in formdata.getlist(f"w-{i}-days") if d in ("0", "1", "2", "3", "4", "5", "6")})
        start = (formdata.get(f"w-{i}-from") or "").strip()[:5]
        end = (formdata.get(f"w-{i}-until") or "").strip()[:5]
        if not (days or start or end):
            continue
        if end == "00:00" and start not in ("", "00:00"):
            end = "24:00"
        rows.append({"days": days, "from": start, "until": end})
    return rows


def rule_input(form: PinForm, windows: list[dict]) -> dict:
    """The service's rule arguments for the chosen kind of PIN."""
    kind = form.kind.data if form.kind.data in KIND_FIELDS else "always"
    values = {"starts": form.starts.data or None, "ends": form.ends.data or None, "windows": windows,
              "uses": (form.uses.data or "").strip() or None}
    return {"kind": kind, **{name: values[name] for name in KIND_FIELDS[kind]}}


@bp.route("/<uuid:mailbox_id>/pins", methods=["GET", "POST"])
@household_required
@get_goes_to(lambda mailbox_id: _box_page(mailbox_id, "pins"))
def add_pin(mailbox_id):
    form = PinForm()
    windows = posted_windows(request.form)
    windows_errors: list[str] = []
    if form.validate_on_submit():
        try:
            added = pins.add_pin(
                account_id(), [mailbox_id, *(form.boxes.data or [])], actor(),
                label=form.label.data, digits=form.digits.data,
                assigned_to_id=form.assigned_to.data or None, duress=bool(form.duress.data),
                **rule_input(form, windows),
            )
        except ServiceError as exc:
            if exc.field == "windows":
                windows_errors.append(exc.message)
            else:
                field_error(form, exc)
        else:
            # The label as saved, without reading the committed PIN again.
            where = "" if len(added) == 1 else f" on {len(added)} boxes"
            flash(f"PIN “{pins.check_label(form.label.data)}” saved{where}. It counts once each box confirms it.",
                  "success")
            # The newest PINs are listed last: the last page of them shows this one.
            return see_other(box_url(mailbox_id, pins_page="last", anchor="#pins"))
    # Invalid: the page again, the refusal on its field, the digits never echoed back.
    form.digits.data = ""
    return _page(mailbox_id, pin_form=form, windows=windows, windows_errors=windows_errors)


@bp.route("/<uuid:mailbox_id>/pins/preview", methods=["POST"])
@household_required
def pin_preview(mailbox_id):
    """The add-PIN form's rules in words, or what is wrong with them (htmx, as it is filled)."""
    mailboxes.get_mailbox(account_id(), mailbox_id)  # NotFound for another household's box
    form = PinForm()
    invalid = False
    try:
        words = pin_rules.preview(time_zone=g.account.time_zone, now=utcnow(),
                                  **rule_input(form, posted_windows(request.form)))
    except ValidationFailed as exc:
        words, invalid = exc.message, True
    return render_template("mailboxes/_pin_preview.html", preview=words, preview_invalid=invalid)


@bp.route("/pins/<uuid:pin_id>/owner", methods=["POST"])
@household_required
def assign_pin(pin_id):
    form = AssignPinForm()
    form.validate_on_submit() or abort(400)
    try:
        group = pins.reassign_pin(account_id(), pin_id, user(), form.assigned_to.data or None)
    except ServiceError as exc:
        return refuse(exc, back())
    pin = next((p for p in group if p.id == pin_id), group[0])
    whose = "nobody in particular" if pin.assigned_to_id is None else "its new owner"
    flash(f"PIN “{pin.label}” now belongs to {whose}.", "success")
    return see_other(pin_url(pin.mailbox_id, pin_id=pin.id, anchor=f"#pin-{pin.id}"))


@bp.route("/<uuid:mailbox_id>/delivery-code", methods=["GET", "POST"])
@household_required
def delivery_code(mailbox_id):
    """A one-time code for a courier, with a text to send them."""
    mailbox = mailboxes.get_mailbox(account_id(), mailbox_id)
    form = DeliveryCodeForm()
    status = 200
    if form.validate_on_submit():
        try:
            pin, digits = pins.add_delivery_code(account_id(), mailbox_id, user(), label=form.label.data or None,
                                                 expires=form.expires.data or None)
        except ServiceError as exc:
            field_error(form, exc)
            status = 422
        else:
            return render_template("mailboxes/delivery_code_made.html", mailbox=mailbox, pin=pin, digits=digits,
                                   household=g.account.name, zone_name=g.account.time_zone)
    return render_template("mailboxes/delivery_code.html", form=form, mailbox=mailbox), status


@bp.route("/<uuid:mailbox_id>/safe-mode", methods=["POST"])
@household_required
@get_goes_to(lambda mailbox_id: _box_page(mailbox_id, "safe-mode"))
def safe_mode_save(mailbox_id):
    form = SafeModeForm()
    if form.validate_on_submit():
        try:
            safe_mode.save(account_id(), mailbox_id, user(), enabled=bool(form.enabled.data),
                           attempts=form.attempts.data, lockouts=form.lockouts.data, dual=bool(form.dual.data))
        except ServiceError as exc:
            if not exc.field:
                return refuse(exc, url_for(".show", mailbox_id=mailbox_id) + "#safe-mode")
            field_error(form, exc)
        else:
            flash("Safe mode saved. It counts once the box confirms it.", "success")
            return see_other(url_for(".show", mailbox_id=mailbox_id) + "#safe-mode")
    return _page(mailbox_id, safe_form=form)

