"""A `requests` transport adapter that hands each request to a WSGI app in process.

Mounted on `http://streamiot.embedded/`, it lets the portal's StreamIoT client talk to
the emulator through exactly the code path it uses against a real deployment: the
client gets a real `requests.Response` with the status, headers and bytes the app
produced, and cannot tell it from HTTP.
"""
import io
from urllib.parse import urlsplit

from requests.adapters import BaseAdapter
from requests.models import Response
from requests.structures import CaseInsensitiveDict
from werkzeug.test import EnvironBuilder, run_wsgi_app


def _body_bytes(body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else data
    return b"".join(chunk.encode("utf-8") if isinstance(chunk, str) else chunk for chunk in body)


class EmbeddedAdapter(BaseAdapter):
    def __init__(self, wsgi_app):
        super().__init__()
        self.app = wsgi_app

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        url = urlsplit(request.url)
        builder = EnvironBuilder(
            path=url.path or "/",
            base_url=f"{url.scheme}://{url.netloc}",
            query_string=url.query,
            method=request.method,
            headers=list(request.headers.items()),
            data=_body_bytes(request.body),
        )
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        app_iter, status, headers = run_wsgi_app(self.app, environ, buffered=True)
        try:
            content = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close:
                close()

        response = Response()
        code, _, reason = status.partition(" ")
        response.status_code = int(code)
        response.reason = reason
        merged: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        for name, value in headers.items():
            # Repeated headers arrive joined, as urllib3 hands them to requests.
            merged[name] = f"{merged[name]}, {value}" if name in merged else value
        response.headers = merged
        response._content = content
        # requests declares this flag on Response itself; types-requests leaves it out.
        response._content_consumed = True  # type: ignore[attr-defined]
        response.raw = io.BytesIO(content)
        response.encoding = None  # callers decode bytes themselves, as with a real server
        response.url = request.url
        response.request = request
        # Typed as HTTPAdapter, but requests only ever calls .send() on it (digest auth's retry).
        response.connection = self  # type: ignore[assignment]
        return response

    def close(self):
        pass
