"""``agents-core serve`` as a real process: it serves, and a signal stops it and its database.

uvicorn raises the signal it caught again after its own shutdown; for SIGTERM that would end
the process before it lets go of the embedded server (its lease on the shared server of the
data directory). These tests send the signals, with an idle time of one second, and then look
for any process left on the data directory: the embedded server, its supervisor, ``serve``.
On the way they read the token from the URL ``serve`` prints, and try it the ways a browser and
a script would (the access rules themselves are tested in ``test_web_access.py``).
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents_core.cli.trace import TOKEN_ENV

pytestmark = pytest.mark.slow

AGENTS_CORE = str(Path(sys.executable).with_name("agents-core"))


#: A token given in the environment (``--token`` would show in ``ps``).
GIVEN_TOKEN = "given-" + "t" * 20
_PRINTED_URL = re.compile(rb"Trace view on (http://\S+) ")


def _env(data_dir: Path) -> dict[str, str]:
    unset = ("MONGODB_URI", "MONGODB_DB", TOKEN_ENV)
    env = {k: v for k, v in os.environ.items() if k not in unset}
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


def printed_url(process: subprocess.Popen[bytes], timeout: float = 60) -> str:
    """The URL ``serve`` prints on stdout once the database is up (read past the buffer, so
    that ``communicate`` later gets the rest)."""
    assert process.stdout is not None
    out = b""
    deadline = time.monotonic() + timeout
    while (found := _PRINTED_URL.search(out)) is None:
        left = deadline - time.monotonic()
        assert left > 0, f"serve printed no URL: {out!r}"
        readable, _, _ = select.select([process.stdout], [], [], left)
        if readable:
            chunk = os.read(process.stdout.fileno(), 4096)
            assert chunk, f"serve closed its stdout: {out!r}"
            out += chunk
    return found.group(1).decode()


def _status(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_until_serving(
    process: subprocess.Popen[bytes], url: str, timeout: float = 60, token: str | None = None
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}")
        try:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=2) as response:
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
    ("signum", "host", "given"),
    [(signal.SIGTERM, "127.0.0.1", GIVEN_TOKEN), (signal.SIGINT, "0.0.0.0", None)],
    ids=["SIGTERM-loopback-given-token", "SIGINT-any-address-generated-token"],
)
def test_serve_stops_on_a_signal_and_leaves_no_database_server(
    data_dir: Path, signum: signal.Signals, host: str, given: str | None
) -> None:
    port = free_port()
    env = _env(data_dir)
    if given is not None:
        env[TOKEN_ENV] = given
    process = subprocess.Popen(
        [AGENTS_CORE, "serve", "--host", host, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = printed_url(process)
        assert url.startswith(f"http://{host}:{port}/?token=")
        token = url.partition("?token=")[2]
        if given is None:  # secrets.token_urlsafe(32)
            assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token), token
        else:
            assert token == given
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(process, f"{base}/api/sessions", token=token)
        assert _status(f"{base}/api/sessions") == 401
        assert _status(f"{base}/api/sessions", {"Authorization": "Bearer " + "x" * 43}) == 401
        # A rebinding page names its own host, and is refused for it, token or not.
        bearer = {"Authorization": f"Bearer {token}"}
        rebound = {**bearer, "Host": f"attacker.example:{port}"}
        assert _status(f"{base}/api/sessions", rebound) == (421 if host == "127.0.0.1" else 200)
        # A browser opens the printed URL: the token becomes a cookie, the URL loses it.
        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        with browser.open(f"{base}/?token={token}", timeout=10) as response:
            assert response.status == 200
            assert response.url == f"{base}/"
        with browser.open(f"{base}/api/sessions", timeout=10) as response:
            assert response.status == 200
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
    assert token.encode() not in stderr  # printed once, on stdout; never logged
    warned = b"has the token can read every session" in stderr
    assert warned == (host != "127.0.0.1")


def test_serve_json_is_one_line_of_where_it_serves(data_dir: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [AGENTS_CORE, "serve", "--port", str(port), "--json"],
        env=_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        where = json.loads(line)
        assert where == {"url": f"http://127.0.0.1:{port}/", "host": "127.0.0.1", "port": port}
        wait_until_serving(process, f"{where['url']}api/sessions")
        process.send_signal(signal.SIGINT)
        rest, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert rest == b""  # stdout holds that one line: no database line, no "stopped"


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_serve_reports_a_port_in_use(data_dir: Path, as_json: bool) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(data_dir)
        result = subprocess.run(
            [AGENTS_CORE, "serve", "--port", str(port), *(["--json"] if as_json else [])],
            env=env,
            capture_output=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    if as_json:
        assert result.stdout == b""
        assert json.loads(result.stderr.splitlines()[-1]) == {
            "error": f"could not serve on 127.0.0.1:{port}",
            "exit_code": 1,
        }
    else:
        assert b"could not serve" in result.stderr
    deadline = time.monotonic() + 30
    while processes_using(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_using(data_dir) == []
