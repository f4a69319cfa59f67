"""Routes of the app itself, outside the blueprints."""
from tests.access import Route

ROUTES = [
    Route("manifest", access="public"),  # the web app manifest
    Route("service_worker", access="public"),  # /sw.js: shows push alerts (scope: the whole site)
    Route("health.healthz", access="public"),  # /healthz: database and worker heartbeat, no household data
]
