"""Shared fixtures for households and users: factories and a logged-in client."""
import re

import pytest

from portal.services import accounts

PASSWORD = "correct horse battery staple"


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


class Auth:
    """Drives the real register/login forms, CSRF included."""

    def __init__(self, client):
        self.client = client

    def csrf(self, path="/login") -> str:
        return csrf_from(self.client.get(path).get_data(as_text=True))

    def register(self, email="alice@example.com", password=PASSWORD, household="Elm Street"):
        token = self.csrf("/register")
        return self.client.post(
            "/register",
            data={"email": email, "password": password, "household_name": household, "csrf_token": token},
        )

    def login(self, email="alice@example.com", password=PASSWORD):
        token = self.csrf("/login")
        return self.client.post("/login", data={"email": email, "password": password, "csrf_token": token})

    def logout(self):
        token = self.csrf("/gateways/")
        return self.client.post("/logout", data={"csrf_token": token})


@pytest.fixture
def auth(client):
    return Auth(client)


@pytest.fixture
def make_household(app):
    """make_household(email, name) -> (user, account), created through the service layer."""

    def make(email="owner@example.com", name="Elm Street", password=PASSWORD):
        return accounts.register(email, password, name)

    return make
