"""`next=` only ever leads to a path on this site."""
import pytest

from portal.urls import safe_next


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "//evil.com/path",
        "https://evil.com",
        "http://evil.com/members/",
        "/\\evil.com",
        "\\\\evil.com",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,hi",
        "evil.com",
        "members/",
        "/\tevil.com",
        "/\n/evil.com",
        "https:evil.com",
        "///evil.com",
        "",
        None,
    ],
)
def test_evil_next_values_are_dropped(target):
    assert safe_next(target) is None


@pytest.mark.parametrize("target", ["/members/", "/members/join/abc_DEF-123", "/activity?kind=member&page=2", "/"])
def test_same_site_paths_are_kept(target):
    assert safe_next(target) == target
