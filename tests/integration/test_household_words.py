"""Household pages speak household words: every GET page and htmx fragment of the household
blueprints, rendered for a household with everything in it, never shows the device
service's name, its things and channels, or a command's name. Only the gateway's
device-settings page may name the ids a firmware needs, in its explained section."""
import re
from html.parser import HTMLParser

import pytest
from flask import url_for

from tests.plugins.accounts import PASSWORD, Auth
from tests.plugins.showcase import build_showcase

HOUSEHOLD_BLUEPRINTS = ("account", "members", "gateways", "mailboxes")
# Not pages: files to download, and ways out.
NOT_PAGES = {"account.activity_csv", "account.logout"}
COMMANDS = re.compile(r"\b(CONNECT|REGISTER|DESTRUCT|DELETE|ADD|AUTH|UNAUTH|UNLOCK|REKEY)\b")
PLATFORM = re.compile(r"streamiot|\bthings?\b|\bchannels?\b", re.IGNORECASE)
SHOWN_ATTRIBUTES = ("title", "aria-label", "placeholder", "hx-confirm", "alt", "value")


class _Text(HTMLParser):
    """What a person reads: text (not in script, style or the explained ids section), the
    attributes a browser shows, and what sits in <code>."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.code: list[str] = []
        self._skip = 0
        self._stack: list[tuple[str, bool]] = []
        self._in_code = 0

    def handle_starttag(self, tag, attrs):
        attrs_d = dict(attrs)
        skip = tag in ("script", "style") or "device-ids" in (attrs_d.get("class") or "").split()
        if tag not in ("input", "meta", "link", "br", "img", "hr"):
            self._stack.append((tag, skip))
            self._skip += skip
            self._in_code += tag == "code"
        if not self._skip:
            for name in SHOWN_ATTRIBUTES:
                if attrs_d.get(name) and not (name == "value" and attrs_d.get("type") == "hidden"):
                    self.parts.append(attrs_d[name])

    def handle_endtag(self, tag):
        while self._stack:
            open_tag, skip = self._stack.pop()
            self._skip -= skip
            self._in_code -= open_tag == "code"
            if open_tag == tag:
                break

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)
            if self._in_code:
                self.code.append(data)


def offending_words(html: str) -> list[str]:
    reader = _Text()
    reader.feed(html)
    text = " ".join(reader.parts)
    found = COMMANDS.findall(text) + PLATFORM.findall(text)
    found += [c for c in reader.code if re.fullmatch(r"\s*Mailbox\s*", c)]  # the command, not the word
    return found


@pytest.fixture
def showcase(sqlite_app):
    return build_showcase()


@pytest.fixture
def owner(sqlite_app, showcase):
    client = sqlite_app.test_client()
    assert Auth(client).login(showcase.owner_email, PASSWORD).status_code == 302
    return client


def _values(showcase, sqlite_app) -> dict[str, list[str]]:
    from portal.extensions import db
    from portal.models import Command, Membership

    commands = db.session.query(Command.id).filter(Command.account_id == showcase.account_id).all()
    memberships = db.session.query(Membership.id).filter(Membership.account_id == showcase.account_id).all()
    return {
        "gateway_id": [str(g) for g in showcase.gateways],
        "mailbox_id": [str(b) for b in showcase.boxes],
        "pin_id": [str(p) for p in showcase.pins[:3]],
        "command_id": [str(c.id) for c in commands[:3]],
        "membership_id": [str(m.id) for m in memberships],
        "invite_id": ["00000000-0000-0000-0000-000000000000"],
        "token": ["not-a-real-token"],
    }


def household_paths(app, values) -> list[str]:
    paths = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            blueprint = rule.endpoint.split(".")[0]
            if blueprint not in HOUSEHOLD_BLUEPRINTS or "GET" not in rule.methods or rule.endpoint in NOT_PAGES:
                continue
            if not rule.arguments:
                paths.append(url_for(rule.endpoint))
                continue
            (argument,) = rule.arguments  # every household page has at most one
            paths += [url_for(rule.endpoint, **{argument: value}) for value in values[argument]]
    return paths


def test_no_household_page_names_the_device_service_or_a_command(sqlite_app, showcase, owner):
    paths = household_paths(sqlite_app, _values(showcase, sqlite_app))
    assert len(paths) > 30, paths
    checked, problems = 0, {}
    for path in paths:
        for headers in ({}, {"HX-Request": "true"}):
            response = owner.get(path, headers=headers)
            if response.status_code in (301, 302, 303, 308) or response.mimetype != "text/html":
                continue
            html = response.get_data(as_text=True)
            checked += 1
            words = offending_words(html)
            if words:
                problems[f"{path} {'(htmx)' if headers else ''}"] = sorted(set(words))
    assert checked > 60
    assert not problems, problems


def test_the_words_check_finds_what_it_is_for():
    assert offending_words("<p>Linked to StreamIoT</p>") == ["StreamIoT"]
    assert offending_words("<li>Send REGISTER</li><p title='its channel'>x</p>") == ["REGISTER", "channel"]
    assert offending_words("<td><code>Mailbox</code></td>") == ["Mailbox"]
    assert offending_words("<p>Nothing to add. Mailbox “Front”, added.</p>") == []
    assert offending_words('<section class="device-ids"><dt>Device id</dt><dd>thing id</dd></section>') == []


def test_the_app_is_installable(sqlite_app):
    client = sqlite_app.test_client()
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200 and response.mimetype == "application/manifest+json"
    manifest = response.get_json(force=True)
    assert manifest["theme_color"] and manifest["display"] == "standalone"
    purposes = {(icon["sizes"], icon["purpose"]) for icon in manifest["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("192x192", "maskable"), ("512x512", "maskable")} <= purposes
    for icon in manifest["icons"]:
        png = client.get(icon["src"])
        assert png.status_code == 200 and png.data.startswith(b"\x89PNG")
        width = int.from_bytes(png.data[16:20], "big")
        assert f"{width}x{width}" == icon["sizes"]
    page = client.get("/login").get_data(as_text=True)
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page and 'name="theme-color"' in page
    assert "serviceWorker" not in page
