"""A row's link built once per page (portal.urls.row_link) is the link url_for makes."""
import uuid

from flask import url_for

from portal.urls import row_link


def test_a_row_link_is_the_link_url_for_makes(sqlite_app):
    with sqlite_app.test_request_context("/gateways/"):
        for endpoint, param in (("mailboxes.show", "mailbox_id"), ("mailboxes.unlock", "mailbox_id"),
                                ("gateways.show", "gateway_id"), ("mailboxes.add", "gateway_id")):
            link = row_link(endpoint, param)
            assert row_link(endpoint, param) is link  # built once per request
            for row_id in (uuid.uuid4(), uuid.uuid4()):
                assert link(row_id) == url_for(endpoint, **{param: row_id})
