"""The virtual gateway's state file: JSON, replaced atomically, locked across processes.

`flask virtual-gateway` (running) and `flask virtual-gateway keypad` (one key press) may
touch the same file at once, so every read-modify-write happens under an exclusive
`flock` on a sibling `.lock` file, and every write goes to a temporary file first and
then replaces the old one, so a crash never leaves half a state behind.
"""
import contextlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from types import ModuleType

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: one process at a time, by convention
    fcntl = None

log = logging.getLogger(__name__)


class StateFile:
    def __init__(self, path):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        # The text last read or written, so an unchanged state is not written again.
        self._current_text = None

    @contextlib.contextmanager
    def locked(self):
        """Hold the file lock; other processes and threads wait until it is released."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as handle:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def load(self) -> dict | None:
        """The saved state, or None when there is none (or it was unreadable: set aside)."""
        self._current_text = None
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            state = json.loads(text)
            if not isinstance(state, dict):
                raise ValueError("not a JSON object")
            self._current_text = text
            return state
        except ValueError as exc:
            # Starting empty replays the channels from the beginning, which rebuilds the
            # same tables; keep the broken file for a human to look at.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            log.error("virtual gateway state %s unreadable (%s); moved to %s", self.path, exc, aside)
            return None

    def save(self, state: dict) -> None:
        # One C-encoded string: json.dump with indent is slow enough to matter here.
        text = json.dumps(state, sort_keys=True, separators=(",", ":"))
        if text == self._current_text and self.path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                # PIN tables live here, as in a real gateway's flash: owner-only.
                os.chmod(tmp, 0o600)
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            self._current_text = text
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def delete(self) -> None:
        self._current_text = None
        for path in (self.path, self.lock_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
