"""Page numbers from the query string are bounded on every paged page: huge, negative and
non-numeric values show a page (the first or the last allowed), never a 500."""
import pytest

from portal.services.paging import MAX_PAGE
from tests.plugins.accounts import PASSWORD, Auth

pytestmark = pytest.mark.rollback

BAD_PAGES = ["922337203685477581", "99999999999999999999999999", "-1", "-922337203685477581", "0", "abc", "", "1e9"]


@pytest.mark.parametrize("path", ["/activity", "/activity?kind=pin"])
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_activity_pages_bound_the_page_number(app, world, path, htmx):
    auth = Auth(app.test_client())
    auth.login(world.a["owner"].email, PASSWORD)
    headers = {"HX-Request": "true"} if htmx else {}
    for value in BAD_PAGES:
        sep = "&" if "?" in path else "?"
        response = auth.client.get(f"{path}{sep}page={value}", headers=headers)
        assert response.status_code == 200, value


def test_a_huge_page_number_shows_the_last_allowed_page(app, world):
    auth = Auth(app.test_client())
    auth.login(world.a["owner"].email, PASSWORD)
    page = auth.client.get("/activity?page=922337203685477581").get_data(as_text=True)
    assert f"Page {MAX_PAGE}" in page


def test_support_search_bounds_the_page_number(app, world, signed_in_staff, client):
    for value in BAD_PAGES:
        response = client.get(f"/support/?q=household&page={value}")
        assert response.status_code == 200, value
        assert "Household A" in response.get_data(as_text=True)
