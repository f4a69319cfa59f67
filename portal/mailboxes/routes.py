"""Views of the mailboxes blueprint (thin: validate, call one service, render)."""
from flask import abort, flash, g, make_response, render_template, request, url_for

from portal.auth import current_login_session, household_required, login_facts
from portal.gateways.forms import ConfirmForm, PasswordForm, RenameForm
from portal.gateways.helpers import (
    account_id,
    back,
    discard_key,
    field_error,
    gone,
    json_download,
    key_offered,
    refuse,
    see_other,
    user,
)
from portal.htmx import household_mark, is_htmx, poll_mark, render, unchanged, versioned
from portal.mailboxes import bp
from portal.mailboxes.forms import (
    WEEKDAYS,
    WINDOW_ROWS_SHOWN,
    KeypadForm,
    MailboxForm,
    PinForm,
    SafeModeForm,
    ShowPinForm,
)
from portal.services import commands, dashboard, gateways, mailboxes, pins, reauth, safe_mode
from portal.services.errors import NotFound, ServiceError
from portal.urls import get_goes_to

KEYPAD_KEYS = "123456789"
# What the virtual box did with an entry (portal/devices/firmware.py keypad()), in words.
_KEYPAD_WORDS = {
    "opened": ("success", "The box opened: that PIN is on it."),
    "rejected": ("error", "The box refused that PIN and stayed shut."),
    "rejected: locked out": ("error", "The keypad is locked out after wrong PINs: the box stayed shut."),
    "refused: outside hours": ("error", "That PIN is on the box, but outside its hours: the box stayed shut."),
    "refused: not yet": ("error", "That PIN is not valid yet: the box stayed shut."),
    "refused: expired": ("error", "That PIN has expired: the box stayed shut."),
    "refused: used up": ("error", "That PIN is used up: the box stayed shut."),
    "first of two": ("info", "First PIN accepted: enter a second, different PIN within a minute to open."),
}


@bp.app_template_global()
def keypad_words(outcome: str) -> tuple[str, str]:
    return _KEYPAD_WORDS.get(outcome, ("error", "The box refused that entry and stayed shut."))


# The highest page of a box's PINs a link may ask for (a bigger one shows the last page).
_MAX_PINS_PAGE = 100_000


def pins_page_asked() -> int:
    """The page of the box's PINs the address asks for (?pins=2, ?pins=last), 1 for none or
    nonsense."""
    if request.args.get("pins") == "last":
        return dashboard.LAST_PINS_PAGE
    page = request.args.get("pins", type=int)
    return min(page, _MAX_PINS_PAGE) if page and page > 0 else 1


def box_url(mailbox_id, *, pins_page: int | str = 1, anchor: str = "") -> str:
    """The box page, on one page of its PINs (the first has no ?pins). Templates have it too."""
    return url_for("mailboxes.show", mailbox_id=mailbox_id, pins=None if pins_page == 1 else pins_page) + anchor


def pin_url(mailbox_id, *, pin_id=None, command_id=None, anchor: str = "#pins") -> str:
    """The box page on the page of PINs that lists the PIN (or the change's PIN)."""
    page = dashboard.pins_page_of(account_id(), pin_id=pin_id, command_id=command_id)
    return box_url(mailbox_id, pins_page=page, anchor=anchor)


@bp.errorhandler(NotFound)
def _not_found(_exc):
    # Another household's box looks exactly like one that never existed.
    return render_template("errors/404.html"), 404


def _page(mailbox_id, status=200, *, windows=None, windows_errors=None, **forms):
    """The mailbox page with its forms (fresh ones unless a failed form is passed in). Its
    live part carries its version, so that its first poll is a 304 while nothing changed
    (the page shows its flashes above the part, so the part shows none)."""
    mark = household_mark(account_id())
    page = dashboard.mailbox_page(account_id(), mailbox_id, owner=g.membership.is_owner, pins_page=pins_page_asked(),
                                  other_boxes=True, mark=mark)
    pin_form = forms.get("pin_form") or PinForm(formdata=None)
    pin_form.assigned_to.choices = [("", "Nobody in particular")] + [(str(i), name) for i, name in page.members]
    pin_form.boxes.choices = [(str(b.id), b.name) for b in page.other_boxes]
    rows = list(windows or [])
    window_rows = rows + [{"days": [], "from": "", "until": ""}] * max(0, WINDOW_ROWS_SHOWN - len(rows))
    safe = page.mailbox.safe_settings
    safe_form = forms.get("safe_form") or SafeModeForm(formdata=None, data={
        "enabled": bool(safe),
        "attempts": str(safe["attempts"]) if safe else "5",
        "lockouts": safe_mode.lockouts_text(page.mailbox) if safe else "1, 5, 15",
        "dual": bool(safe and safe.get("dual_seconds")),
    })
    context = {
        "view": page,
        "live_version": dashboard.live_version(dashboard.live_part(account_id(), page.mailbox.id, page.pins_page),
                                               mark, page),
        "pin_form": pin_form,
        "keypad_form": forms.get("keypad_form") or KeypadForm(formdata=None),
        "safe_form": safe_form,
        "key_held": key_offered("mailbox", page.mailbox.id),
        "zone_name": page.zone_name,
        "weekdays": WEEKDAYS,
        "window_rows": window_rows,
        "windows_shown": max(1, len(rows)),
        "windows_errors": windows_errors or [],
        "duress_offered": page.safe_mode_possible,
    }
    return render_template("mailboxes/show.html", **context), status


def _box_page(mailbox_id, section: str) -> str:
    """The box's page at a section, for a GET of a form's POST URL (NotFound for a box of
    another household)."""
    return url_for(".show", mailbox_id=mailboxes.get_mailbox(account_id(), mailbox_id).id) + f"#{section}"


@bp.route("/new/<uuid:gateway_id>", methods=["GET", "POST"])
@household_required
def add(gateway_id):
    form = MailboxForm()
    if form.validate_on_submit():
        try:
            mailbox, _private_key = mailboxes.add_mailbox(
                account_id(),
                gateway_id,
                user(),
                name=form.name.data,
                kind=form.kind.data,
                key_mode=form.key_mode.data,
                public_key=form.public_key.data,
            )
        except ServiceError as exc:
            field_error(form, exc)
        else:
            flash(f"“{mailbox.name}” added. IoTLock is registering it on its gateway now.", "success")
            return see_other(url_for(".show", mailbox_id=mailbox.id))
    gateway = gateways.get_gateway(account_id(), gateway_id)
    return render_template("mailboxes/add.html", form=form, gateway=gateway)


@bp.route("/<uuid:mailbox_id>")
@household_required
def show(mailbox_id):
    if is_htmx():
        # The live part polls with the version it shows: while it holds, the part is not read
        # or rendered again (304, which htmx does not swap; base.html's htmx-config). A flash
        # to show always renders.
        pins_page = pins_page_asked()
        part = dashboard.live_part(account_id(), mailbox_id, pins_page)
        mark = poll_mark(account_id(), shows_flashes=True)
        if (not_modified := unchanged(part, mark)) is not None:
            return not_modified
        try:
            page = dashboard.mailbox_page(account_id(), mailbox_id, with_snapshot=False, owner=g.membership.is_owner,
                                          pins_page=pins_page, events=1, mark=mark)
        except NotFound:
            return gone(url_for("gateways.index"), "The box was removed.")
        version = dashboard.live_version(part, mark, page)
        html = render_template("mailboxes/_mailbox_live.html", view=page, live_version=version)
        return versioned(html, 200, version)
    return _page(mailbox_id)


@bp.route("/<uuid:mailbox_id>/box")
@household_required
def box(mailbox_id):
    """What the box itself reports: its events and (virtual gateways) what it holds. Its
    events poll with the version they show, as the live part does."""
    part = dashboard.box_report_part(account_id(), mailbox_id, owner=g.membership.is_owner)
    mark = poll_mark(account_id())
    if (not_modified := unchanged(part, mark)) is not None:
        return not_modified
    page = dashboard.box_report(account_id(), mailbox_id, owner=g.membership.is_owner)
    version = dashboard.box_report_version(part, mark, page)
    return versioned(*render("mailboxes/box.html", "mailboxes/_box.html", view=page, box_version=version), version)


@bp.route("/<uuid:mailbox_id>/rename", methods=["GET", "POST"])
@household_required
def rename(mailbox_id):
    form = RenameForm()
    if form.validate_on_submit():
        try:
            mailbox = mailboxes.rename_mailbox(account_id(), mailbox_id, user(), form.name.data)
        except ServiceError as exc:
            field_error(form, exc)
        else:
            flash(f"Renamed to “{mailbox.name}”.", "success")
            return see_other(url_for(".show", mailbox_id=mailbox.id))
    mailbox = mailboxes.get_mailbox(account_id(), mailbox_id)
    if request.method == "GET":
        form.name.data = mailbox.name
    return render_template("mailboxes/rename.html", form=form, mailbox=mailbox)


@bp.route("/<uuid:mailbox_id>/remove", methods=["GET", "POST"])
@household_required
def remove(mailbox_id):
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            mailbox = mailboxes.remove_mailbox(account_id(), mailbox_id, user())
        except ServiceError as exc:
            return refuse(exc, url_for(".show", mailbox_id=mailbox_id))
        flash(f"Removing “{mailbox.name}”: its gateway forgets it, then its private line is closed.", "info")
        return see_other(url_for("gateways.show", gateway_id=mailbox.gateway_id))
    mailbox = mailboxes.get_mailbox(account_id(), mailbox_id)
    return render_template("mailboxes/remove.html", form=form, mailbox=mailbox)


@bp.route("/<uuid:mailbox_id>/retry", methods=["POST"])
@household_required
def retry(mailbox_id):
    ConfirmForm().validate_on_submit() or abort(400)
    try:
        mailboxes.retry_mailbox(account_id(), mailbox_id, user())
    except ServiceError as exc:
        return refuse(exc, url_for(".show", mailbox_id=mailbox_id))
    flash("Trying again.", "info")
    return see_other(url_for(".show", mailbox_id=mailbox_id))


@bp.route("/<uuid:mailbox_id>/unlock", methods=["GET", "POST"])
@household_required
def unlock(mailbox_id):
    """Unlock now: htmx asks with hx-confirm; without JavaScript this page asks."""
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            command = commands.unlock(account_id(), mailbox_id, user())
        except ServiceError as exc:
            return refuse(exc, url_for(".show", mailbox_id=mailbox_id))
        # The one-tap Open of the dashboard and of a gateway page comes back to that page.
        came_from = {
            "dashboard": url_for("gateways.index"),
            "gateway": url_for("gateways.show", gateway_id=command.gateway_id),
        }.get(request.form.get("back", ""))
        if came_from:
            flash("Open sent. The box’s row shows it on its way until the box answers.", "info")
            return see_other(came_from)
        flash("Unlock sent. The result appears below.", "info")
        return see_other(url_for(".show", mailbox_id=mailbox_id) + "#unlock")
    mailbox = mailboxes.get_mailbox(account_id(), mailbox_id)
    return render_template("mailboxes/unlock.html", form=form, mailbox=mailbox)


@bp.route("/pins/<uuid:pin_id>/remove", methods=["POST"])
@household_required
def remove_pin(pin_id):
    ConfirmForm().validate_on_submit() or abort(400)
    try:
        pin = pins.remove_pin(account_id(), pin_id, user())
    except ServiceError as exc:
        return refuse(exc, back())
    flash(f"Removing PIN “{pin.label}”. It works until the box confirms.", "info")
    return see_other(pin_url(pin.mailbox_id, pin_id=pin.id))


@bp.route("/pins/<uuid:pin_id>/show", methods=["GET", "POST"])
@household_required
@get_goes_to(lambda pin_id: _box_page(pins.mailbox_id_of(account_id(), pin_id), "pins"))
def show_pin(pin_id):
    """The digits of one PIN, after a fresh password check; recorded in the activity log."""
    form = ShowPinForm()
    if form.validate_on_submit():
        try:
            pin, digits = pins.show_pin(account_id(), pin_id, user(), current_login_session(),
                                        password=form.password.data)
        except ServiceError as exc:
            if isinstance(exc, NotFound):
                raise
            if exc.field != "password":
                return refuse(exc, back())
            field_error(form, exc)
        else:
            return render("mailboxes/pin_show.html", "mailboxes/_pin_digits.html",
                          form=form, pin_id=pin.id, pin=pin, digits=digits)
    # A refused password (wrong, or with a NUL): asked again, the refusal on the field.
    form.password.data = ""
    return render("mailboxes/pin_show.html", "mailboxes/_pin_digits.html",
                  form=form, pin_id=pin_id, pin=None, digits=None)


@bp.route("/changes/<uuid:command_id>/retry", methods=["POST"])
@household_required
def retry_change(command_id):
    ConfirmForm().validate_on_submit() or abort(400)
    try:
        command = commands.retry_command(account_id(), command_id, user())
    except ServiceError as exc:
        return refuse(exc, back())
    flash("Sending it again.", "info")
    return see_other(pin_url(command.mailbox_id, command_id=command.id))


@bp.route("/changes/<uuid:command_id>/withdraw", methods=["POST"])
@household_required
def withdraw_change(command_id):
    ConfirmForm().validate_on_submit() or abort(400)
    try:
        withdrawal = commands.withdraw_command(account_id(), command_id, user())
    except ServiceError as exc:
        return refuse(exc, back())
    flash(withdrawal.message, "info")
    return see_other(pin_url(withdrawal.command.mailbox_id, command_id=withdrawal.command.id))


@bp.route("/<uuid:mailbox_id>/keypad", methods=["GET", "POST"])
@household_required
@get_goes_to(lambda mailbox_id: _box_page(mailbox_id, "keypad"))
def keypad(mailbox_id):
    """The virtual box's keypad: digit keys type, Enter tries the PIN on the box."""
    form = KeypadForm()
    key = request.form.get("key", "enter")
    outcome = None
    if not form.validate_on_submit():
        pass
    elif key in KEYPAD_KEYS + "0" or key == "clear":
        # Typing happens here, not in the box: only Enter sends the digits to it.
        form.digits.data = "" if key == "clear" else ((form.digits.data or "").strip() + key)[:8]
    else:
        try:
            outcome = mailboxes.press_keypad(account_id(), mailbox_id, form.digits.data)
        except ServiceError as exc:
            field_error(form, exc)
        else:
            form.digits.data = ""
            if not is_htmx():
                category, words = keypad_words(outcome)
                flash(words, category)
                return see_other(url_for(".show", mailbox_id=mailbox_id) + "#keypad")
    if is_htmx():
        mailbox = mailboxes.get_mailbox(account_id(), mailbox_id)
        response = make_response(
            render_template("mailboxes/_keypad.html", keypad_form=form, mailbox=mailbox, outcome=outcome)
        )
        if outcome:
            response.headers["HX-Trigger"] = "box-changed"  # the box panels refresh at once
        return response
    return _page(mailbox_id, keypad_form=form)


@bp.route("/<uuid:mailbox_id>/key", methods=["GET", "POST"])
@household_required
def key(mailbox_id):
    """The private key IoTLock made for this box: behind a password check, offered once."""
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            mailboxes.confirm_password_for(account_id(), mailbox_id, current_login_session(), user(),
                                           form.password.data)
        except ServiceError as exc:
            field_error(form, exc)
        else:
            return see_other(url_for(".key", mailbox_id=mailbox_id))
    mailbox = mailboxes.get_mailbox(account_id(), mailbox_id)
    return render_template(
        "mailboxes/key.html",
        form=form,
        mailbox=mailbox,
        needs_password=not reauth.reauth_is_fresh(login_facts()),
        key_held=key_offered("mailbox", mailbox.id),
    )


@bp.route("/<uuid:mailbox_id>/key/download", methods=["POST"])
@household_required
def key_download(mailbox_id):
    ConfirmForm().validate_on_submit() or abort(400)
    try:
        mailbox, document = mailboxes.key_download(account_id(), mailbox_id, user(), current_login_session())
    except reauth.PasswordRequired:
        return see_other(url_for(".key", mailbox_id=mailbox_id))
    except ServiceError as exc:
        return refuse(exc, url_for(".show", mailbox_id=mailbox_id))
    return json_download(document, f"{mailbox.name}-key")


@bp.route("/<uuid:mailbox_id>/key/new", methods=["POST"])
@household_required
def new_key_pair(mailbox_id):
    """A new key pair for the box (password checked on the key page a moment ago)."""
    ConfirmForm().validate_on_submit() or abort(400)
    try:
        mailboxes.new_key_pair(account_id(), mailbox_id, user(), current_login_session())
    except reauth.PasswordRequired:
        return see_other(url_for(".key", mailbox_id=mailbox_id))
    except ServiceError as exc:
        return refuse(exc, url_for(".key", mailbox_id=mailbox_id))
    flash("New key pair made. Download the private key now; the gateway is being told the new one.", "success")
    return see_other(url_for(".key", mailbox_id=mailbox_id))


@bp.route("/<uuid:mailbox_id>/key/discard", methods=["POST"])
@household_required
def discard_private_key(mailbox_id):
    """The member does not want the private key IoTLock made for them: it is deleted."""
    ConfirmForm().validate_on_submit() or abort(400)
    mailboxes.get_mailbox(account_id(), mailbox_id)
    return discard_key("mailbox", mailbox_id, url_for(".key", mailbox_id=mailbox_id))
