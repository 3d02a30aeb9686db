"""``agents-core serve`` as a real process: it serves, and a signal stops it and its database.

uvicorn raises the signal it caught again after its own shutdown; for SIGTERM that would end
the process before it lets go of the embedded server (its lease on the shared server of the
data directory). These tests send the signals, with an idle time of one second, and then look
for any process left on the data directory: the embedded server, its supervisor, ``serve``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents_core.cli.trace import is_loopback

pytestmark = pytest.mark.slow

AGENTS_CORE = str(Path(sys.executable).with_name("agents-core"))


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "MONGODB_DB")}
    env["AGENTS_CORE_DATA"] = str(data_dir)
    env["AGENTS_CORE_EMBEDDED_IDLE_S"] = "1"
    return env


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def processes_using(path: Path) -> list[int]:
    """Pids whose command line names ``path`` (the embedded server's storage)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(path) in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def wait_until_serving(process: subprocess.Popen[bytes], url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"
    for pid in processes_using(tmp_path):  # never leave one behind, even when a test fails
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("signum", "host"),
    [(signal.SIGTERM, "127.0.0.1"), (signal.SIGINT, "0.0.0.0")],
    ids=["SIGTERM", "SIGINT"],
)
def test_serve_stops_on_a_signal_and_leaves_no_database_server(
    data_dir: Path, signum: signal.Signals, host: str
) -> None:
    port = free_port()
    env = _env(data_dir)
    process = subprocess.Popen(
        [AGENTS_CORE, "serve", "--host", host, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_serving(process, f"http://127.0.0.1:{port}/api/sessions")
        servers = [pid for pid in processes_using(data_dir) if b"secantusd" in _cmdline(pid)]
        assert len(servers) == 1, servers  # the embedded SecantusDB, started for serve
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert b"Trace view stopped." in stdout
    # Idle for a second, the shared server stops (~2 s), and its supervisor with it.
    deadline = time.monotonic() + 30
    while processes_using(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_using(data_dir) == []
    warned = b"no authentication" in stderr
    assert warned == (host != "127.0.0.1")


def test_serve_reports_a_port_in_use(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(data_dir)
        result = subprocess.run(
            [AGENTS_CORE, "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    assert b"could not serve" in result.stderr
    deadline = time.monotonic() + 30
    while processes_using(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_using(data_dir) == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.org", False),
    ],
)
def test_which_hosts_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
