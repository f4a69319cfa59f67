"""The access matrix: every route of the app, who may use it, and whether it is scoped to a
household. Each area lists its routes in tests/access/<area>.py as ROUTES; the matrix tests
fail when a route of the app is missing here."""
import importlib
import pkgutil
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Route:
    endpoint: str
    methods: tuple = ("GET",)
    # public: anyone; login: any logged-in user; member: a member of the current household;
    # owner: an owner of it; staff: support staff with a second factor; api: an API token
    # with `scope` (tests/integration/test_api_access.py; sessions never authenticate it).
    access: str = "member"
    # URL arguments -> key of the object in the "world" fixture that provides the id, e.g.
    # {"gateway_id": "gateway"}. Routes with such arguments are household-scoped: a member
    # of another household gets 404 and nothing changes.
    args: dict = field(default_factory=dict)
    # Extra form data for non-GET requests (the CSRF token is added by the test).
    data: dict = field(default_factory=dict)
    # URL arguments with literal values that are not a household's ids (e.g. an invite token
    # in a public link): {"token": "not-a-real-token"}.
    fixed_args: dict = field(default_factory=dict)
    # Posted by other systems without a session (one-click unsubscribe): no CSRF token.
    csrf_exempt: bool = False
    # API routes: the token scope they need, and whether only owners may use them. Their
    # `data` is a JSON body whose "@key" strings are ids of the world (of the household
    # the request is aimed at).
    scope: str = ""
    owners_only: bool = False


def all_routes() -> list[Route]:
    """The union of ROUTES of every module in this package."""
    routes = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        routes.extend(getattr(module, "ROUTES", []))
    return routes
