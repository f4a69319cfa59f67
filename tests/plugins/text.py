"""Checks that digits never show, robust to random ids: a UUID, a key or a MAC may contain
any four digits ("4821" is in one UUID of ~30), so "absent" is checked on what a person
reads (the visible text of HTML), or on text with the random tokens taken out."""
import re
from html.parser import HTMLParser

UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Keys, MACs, digests, sealed blobs: runs of 16+ base64/hex characters with a letter in them
# (a PIN's digits stand alone, so they survive this).
TOKEN = re.compile(r"(?=[A-Za-z0-9+/_=-]*[A-Za-z+/_=-])[A-Za-z0-9+/_=-]{16,}")


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        # What an input shows is its value: a person reads it, so it counts as text.
        value = dict(attrs).get("value")
        if tag == "input" and value and dict(attrs).get("type") != "hidden":
            self.parts.append(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    """The text of an HTML page or fragment as read on screen: no tags, no attributes
    (ids, URLs, tokens), but the values shown in visible inputs."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    return " ".join(" ".join(parser.parts).split())


def without_ids(text: str) -> str:
    """The text with UUIDs and key/MAC/digest-like tokens taken out."""
    return TOKEN.sub("<token>", UUID.sub("<id>", text))
