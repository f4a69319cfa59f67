"""Serve an emulator over real HTTP from a background thread (tests, tools)."""
import threading
from typing import NamedTuple

from werkzeug.serving import make_server


class Served(NamedTuple):
    url: str  # STREAMIOT_URL: the proxy paths
    reader_url: str  # STREAMIOT_READER_URL
    stop: object  # call to shut the server down
    app: object  # the emulator being served


def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0) -> Served:
    """Start a threaded HTTP server for `app` (port 0: a free one) and return its URLs."""
    server = make_server(host, port, app, threaded=True)
    # A short poll interval makes stop() quick (the default waits up to half a second).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="streamiot-emulator", daemon=True
    )
    thread.start()
    url = f"http://{host}:{server.server_port}"

    def stop():
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return Served(url, f"{url}/reader", stop, app)
