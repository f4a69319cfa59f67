"""One-time link tokens never reach the access log."""
import logging

from portal import logredact


def _line(msg, *args) -> str:
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, msg, args, None)
    assert logredact.RedactTokens().filter(record) is True
    return record.getMessage()


def test_invite_and_set_password_tokens_are_redacted_from_request_lines():
    line = _line('%s - - [%s] "%s" %s', "127.0.0.1", "now", "GET /members/join/s3cr3tT0ken HTTP/1.1", "200")
    assert "s3cr3tT0ken" not in line
    assert "/members/join/[redacted]" in line
    line = _line('"POST /support/set-password/An0ther-t0k3n?x=1 HTTP/1.1" 302')
    assert "An0ther-t0k3n" not in line
    assert "/support/set-password/[redacted]?x=1" in line


def test_the_filter_is_installed_on_the_request_loggers():
    logredact.install()
    logredact.install()
    for name in ("werkzeug", "gunicorn.access"):
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, logredact.RedactTokens)]
        assert len(filters) == 1


def test_other_paths_are_left_alone():
    assert logredact.redact("GET /gateways/123 HTTP/1.1") == "GET /gateways/123 HTTP/1.1"


class _Atoms(dict):
    """Like gunicorn's SafeAtoms: an atom it lacks formats as "-"."""

    def __getitem__(self, key):
        return super().__getitem__(key) if key in self else "-"


def test_a_single_mapping_argument_stays_a_mapping_of_its_own_type_with_its_values_redacted():
    atoms = _Atoms(h="127.0.0.1", r="GET /members/join/s3cr3tT0ken HTTP/1.1", s=200)
    line = _line('%(h)s "%(r)s" %(s)s %({x-forwarded-for}i)s', atoms)
    assert line == '127.0.0.1 "GET /members/join/[redacted] HTTP/1.1" 200 -'
    assert atoms["r"] == "GET /members/join/s3cr3tT0ken HTTP/1.1"  # the caller's dict is left alone
