"""Many attempts at once (issue 8): at most LOGIN_MAX_FAILURES_PER_ACCOUNT logins per account
reach the password hasher and at most SIGNUPS_PER_ADDRESS sign-ups per address are made,
however many run in parallel, and the right password is refused while the account is
locked. Each attempt is its own request with its own database session, on a thread."""
import threading
from collections import Counter

import pytest

import portal.crypto
from tests.plugins.accounts import PASSWORD, Auth

PARALLEL = 14
LIMIT = 5
SIGNUPS = 3
WRONG = "wrong guess one"
EMAIL = "alice@example.com"
REFUSED = ("locked", "too many sign-ups")


@pytest.fixture
def app_overrides():
    return {"LOGIN_MAX_FAILURES_PER_ACCOUNT": LIMIT, "SIGNUPS_PER_ADDRESS": SIGNUPS}


@pytest.fixture
def alice(make_household):
    user, _ = make_household(EMAIL, "Elm Street")
    return user


class HasherGate:
    """Wraps a password-hasher function: records the passwords it gets, and holds every
    call until each parallel attempt has either reached the hasher or been refused, so all
    of them race for the throttle before any verdict, whatever the thread scheduling. (A
    right password resets the account's count, as a login one after another would; an
    attempt arriving after that starts afresh, which is not the race under test.)"""

    def __init__(self, attempts: int):
        self.attempts = attempts
        self.passwords: list[str] = []
        self.refused = 0
        self.armed = False  # set by race(), so fixtures may hash passwords before it
        self.cond = threading.Condition()

    def wrap(self, real):
        def gated(*args):
            if not self.armed:
                return real(*args)
            with self.cond:
                self.passwords.append(args[-1])
                self.cond.notify_all()
                # The timeout only bounds a broken run; a correct one opens once all arrive.
                self.cond.wait_for(lambda: len(self.passwords) + self.refused >= self.attempts, timeout=20)
            return real(*args)

        return gated

    def note(self, outcome: str):
        if outcome in REFUSED or outcome.startswith("unexpected"):
            with self.cond:
                self.refused += 1
                self.cond.notify_all()


@pytest.fixture
def gate(monkeypatch):
    gate = HasherGate(PARALLEL)
    monkeypatch.setattr(portal.crypto, "verify_password", gate.wrap(portal.crypto.verify_password))
    monkeypatch.setattr(portal.crypto, "hash_password", gate.wrap(portal.crypto.hash_password))
    return gate


def outcome(response) -> str:
    html = response.get_data(as_text=True)
    if response.status_code == 302:
        return "in"
    if response.status_code == 429 and "Too many failed attempts" in html:
        return "locked"
    if response.status_code == 429 and "Too many new accounts from your network" in html:
        return "too many sign-ups"
    if response.status_code == 200 and "That email and password do not match an account." in html:
        return "wrong password"
    return f"unexpected {response.status_code}"


def race(app, gate: HasherGate, path: str, forms: list[dict], addresses: list[str]) -> list[str]:
    """POST every form to `path` at the same moment, each from its own client and address."""
    clients = [Auth(app.test_client()) for _ in forms]
    tokens = [c.csrf(path) for c in clients]
    start = threading.Barrier(len(forms))
    gate.armed = True
    outcomes = ["unexpected: no answer"] * len(forms)
    errors = []

    def attempt(n):
        try:
            start.wait()
            response = clients[n].client.post(
                path, data={**forms[n], "csrf_token": tokens[n]}, environ_base={"REMOTE_ADDR": addresses[n]}
            )
            outcomes[n] = outcome(response)
        except Exception as exc:  # noqa: BLE001  (reported by the test)
            errors.append(exc)
        finally:
            gate.note(outcomes[n])

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(len(forms))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads), "requests still running after the timeout"
    return outcomes


def race_logins(app, gate, passwords: list[str]) -> list[str]:
    # One address each, so only the account key can refuse them.
    forms = [{"email": EMAIL, "password": password} for password in passwords]
    return race(app, gate, "/login", forms, [f"198.51.100.{n + 1}" for n in range(len(forms))])


def test_parallel_wrong_guesses_reach_the_hasher_at_most_limit_times(app, backend, alice, gate):
    outcomes = race_logins(app, gate, [WRONG] * PARALLEL)
    print(f"\n{backend}: {PARALLEL} parallel wrong guesses, hasher checked {len(gate.passwords)}: {Counter(outcomes)}")
    assert len(gate.passwords) <= LIMIT
    assert Counter(outcomes) == {"wrong password": LIMIT, "locked": PARALLEL - LIMIT}

    response = Auth(app.test_client()).login(EMAIL, PASSWORD)
    assert outcome(response) == "locked"
    assert len(gate.passwords) == LIMIT, "the right password reached the hasher while locked"


def test_right_password_among_parallel_guesses_leaves_at_most_limit_wrong_ones_checked(app, backend, alice, gate):
    passwords = [WRONG] * PARALLEL
    passwords[PARALLEL // 2] = PASSWORD
    outcomes = race_logins(app, gate, passwords)
    wrong_checked = gate.passwords.count(WRONG)
    print(f"\n{backend}: 1 right among {PARALLEL}, wrong guesses checked {wrong_checked}: {Counter(outcomes)}")
    assert wrong_checked <= LIMIT
    assert len(gate.passwords) == LIMIT
    assert outcomes.count("wrong password") == wrong_checked
    assert outcomes.count("locked") == PARALLEL - LIMIT
    # The right password got in exactly when it won one of the slots.
    assert outcomes[PARALLEL // 2] == ("in" if PASSWORD in gate.passwords else "locked")


def test_parallel_sign_ups_from_one_address_make_at_most_the_limit(app, backend, gate):
    forms = [
        {"email": f"bulk{n}@example.com", "password": PASSWORD, "household_name": f"House {n}"}
        for n in range(PARALLEL)
    ]
    outcomes = race(app, gate, "/register", forms, ["203.0.113.5"] * PARALLEL)
    print(f"\n{backend}: {PARALLEL} parallel sign-ups, hashed {len(gate.passwords)}: {Counter(outcomes)}")
    assert len(gate.passwords) <= SIGNUPS
    assert Counter(outcomes) == {"in": SIGNUPS, "too many sign-ups": PARALLEL - SIGNUPS}
