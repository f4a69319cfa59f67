"""One writer per state, layers without cycles, imports at the top: checked by reading the code.

- Only portal/services/deliveries.py writes the state of a command, PIN, gateway or box;
  only portal/services/device_reports.py moves a courier's parcel along (Pin.delivery_state:
  the box's reports are what moves it);
  job states belong to the outbox (portal/jobs/outbox.py, runner.py), StreamIoT's health
  to portal/jobs/platform.py.
- Templates compare states with the enums, never with state words.
- Services never import portal.streamiot; nothing imports inside a function.
- portal/jobs/__init__.py imports nothing, so services can import the leaf outbox.
"""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PORTAL = ROOT / "portal"
STATE_OWNER = PORTAL / "services" / "deliveries.py"
JOB_STATE_OWNERS = {PORTAL / "jobs" / "outbox.py", PORTAL / "jobs" / "runner.py"}
PLATFORM_STATE_OWNER = PORTAL / "jobs" / "platform.py"
# A gateway's key replacement (Gateway.key_state) has its own owner.
KEY_STATE_OWNER = PORTAL / "services" / "gateway_keys.py"
# A courier's parcel (Pin.delivery_state) moves only with what the boxes report.
PARCEL_STEP_OWNER = PORTAL / "services" / "device_reports.py"
# An alert's delivery to a member (Notification.state) moves in one module.
NOTIFICATION_STATE_OWNERS = {PORTAL / "services" / "notifications.py"}
STATE_WORDS = {"queued", "sending", "sent", "confirmed", "failed", "expired", "withdrawn",
               "adding", "active", "removing", "removed", "provisioning"}


def _modules():
    return sorted(p for p in PORTAL.rglob("*.py") if "__pycache__" not in p.parts)


def _state_writes(path: Path, attrs=("state", "status"), models=("Command", "Pin", "Gateway", "Mailbox")) -> list[str]:
    """`x.state = ...` / `x.status = ...`, and `state=` / `status=` inside `.values(...)` or
    when a row of `models` is created (`attrs` names the state columns looked for)."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Attribute) and target.attr in attrs:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} assigns .{target.attr}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "values":
            for keyword in node.keywords:
                if keyword.arg in attrs:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} writes {keyword.arg}= in an UPDATE")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in models:
            for keyword in node.keywords:
                if keyword.arg in attrs:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} creates a {node.func.id} with a state")
    return found


def test_only_the_delivery_module_writes_device_pin_and_command_states():
    writes = []
    for path in _modules():
        # The firmware's state is the device's and an HTTP status is the platform's.
        owners = {STATE_OWNER, PLATFORM_STATE_OWNER} | JOB_STATE_OWNERS | NOTIFICATION_STATE_OWNERS
        if path in owners or path.relative_to(PORTAL).parts[0] in ("devices", "streamiot"):
            continue
        writes += _state_writes(path)
    assert writes == []


def test_the_checker_sees_a_state_write():
    """The rule above could pass by not looking: the owner module itself is full of writes."""
    assert _state_writes(STATE_OWNER)


@pytest.mark.parametrize("path", sorted((ROOT / "templates").rglob("*.html")), ids=lambda p: p.name)
def test_templates_compare_states_with_the_enums_not_with_words(path):
    text = path.read_text()
    # A job's and a set-up step's state are not delivery states (jobs belong to the outbox).
    compared = re.findall(r"(?<!job)(?<!step)\.(?:status|state)\s*(?:==|!=|in)\s*\(?\s*[\"']([a-z_]+)[\"']", text)
    assert [word for word in compared if word in STATE_WORDS] == []


def _imports(path: Path):
    """(node, dotted name) of everything a module imports (`from a import b` gives a.b)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                yield node, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name


def test_services_never_import_streamiot_or_the_job_runner():
    wrong = [
        f"{path.relative_to(ROOT)}:{node.lineno} imports {module}"
        for path in sorted((PORTAL / "services").glob("*.py"))
        for node, module in _imports(path)
        if module.startswith("portal.streamiot")
        or (module.startswith("portal.jobs.") and not module.startswith("portal.jobs.outbox"))
    ]
    assert wrong == []


# (owner, column, model): a gateway's key replacement; a courier's parcel.
OTHER_STATES = [(KEY_STATE_OWNER, "key_state", "Gateway"), (PARCEL_STEP_OWNER, "delivery_state", "Pin")]


@pytest.mark.parametrize("owner, column, model", OTHER_STATES, ids=[c for _o, c, _m in OTHER_STATES])
def test_each_other_state_has_one_writer(owner, column, model):
    writes = [w for path in _modules() if path != owner for w in _state_writes(path, (column,), (model,))]
    assert writes == []
    assert _state_writes(owner, (column,), (model,)), "the checker sees the owner's writes"


def test_imports_sit_at_the_top_of_every_module():
    lazy = []
    for path in _modules():
        tree = ast.parse(path.read_text(), str(path))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                parent_try = any(
                    isinstance(t, ast.Try) and node in ast.walk(t) for t in tree.body
                )  # an optional import at module level (fcntl) is still at the top
                if not parent_try:
                    lazy.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert lazy == []


def test_the_jobs_package_imports_nothing():
    tree = ast.parse((PORTAL / "jobs" / "__init__.py").read_text())
    assert not [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]

