"""One-time link tokens never reach the access log."""
import logging

from portal import logredact


def test_invite_and_set_password_tokens_are_redacted_from_request_lines(caplog):
    logredact.install()
    logger = logging.getLogger("werkzeug")
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        logger.info('%s - - [%s] "%s" %s', "127.0.0.1", "now", "GET /members/join/s3cr3tT0ken HTTP/1.1", "200")
        logger.info('"POST /support/set-password/An0ther-t0k3n?x=1 HTTP/1.1" 302')
    text = caplog.text
    assert "s3cr3tT0ken" not in text
    assert "An0ther-t0k3n" not in text
    assert "/members/join/[redacted]" in text
    assert "/support/set-password/[redacted]?x=1" in text


def test_other_paths_are_left_alone():
    assert logredact.redact("GET /gateways/123 HTTP/1.1") == "GET /gateways/123 HTTP/1.1"
