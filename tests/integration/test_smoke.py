"""The app starts, serves its pages, and a household can register and log in."""
import pytest

pytestmark = pytest.mark.rollback


def test_register_creates_household_and_logs_in(client, auth):
    response = auth.register()
    assert response.status_code == 302
    page = client.get("/gateways/").get_data(as_text=True)
    assert "Elm Street" in page


def test_welcome_page_for_visitors(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "Create your household" in response.get_data(as_text=True)
