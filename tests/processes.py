"""Helpers for tests that run a server in a subprocess."""
import subprocess


def stop(process: subprocess.Popen) -> None:
    """End a server the test started: politely, then for good after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
