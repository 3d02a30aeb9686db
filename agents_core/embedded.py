"""A local MongoDB-wire server (SecantusDB) run as a child process: the default database when no
``MONGODB_URI`` is configured.

Usage::

    from agents_core.embedded import EmbeddedServer

    with EmbeddedServer("./.agents-core") as server:   # persists under that directory
        await init_db(server.uri)

SecantusDB is GPL-2.0, so it is only ever *executed* (its ``secantusd-py`` script, from the
``embedded`` extra: ``pip install agents-core[embedded]``), never imported.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["DEFAULT_DATA_DIR", "EmbeddedServer", "EmbeddedServerError", "data_dir_from_env"]

#: Where the embedded server keeps its data unless ``AGENTS_CORE_DATA`` says otherwise.
DEFAULT_DATA_DIR = Path(".agents-core")
#: Storage path that keeps everything in memory (gone when the server stops).
IN_MEMORY = ":memory:"

_LISTENING = re.compile(r"listening on (?P<host>[\w.:\[\]-]+):(?P<port>\d+)")


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be found, started or stopped."""


def data_dir_from_env() -> Path:
    """``AGENTS_CORE_DATA``, else ``./.agents-core``."""
    return Path(os.environ.get("AGENTS_CORE_DATA") or DEFAULT_DATA_DIR)


def server_executable() -> str:
    """The path of ``secantusd-py``: on ``PATH``, or beside this interpreter (a venv)."""
    beside = Path(sys.executable).with_name("secantusd-py")
    found = shutil.which("secantusd-py") or (str(beside) if beside.exists() else None)
    if found is None:
        raise EmbeddedServerError(
            "secantusd-py not found: install the embedded server with "
            "`pip install 'agents-core[embedded]'` (or set MONGODB_URI)"
        )
    return found


class EmbeddedServer:
    """Start ``secantusd-py`` on a free loopback port; stop it with SIGTERM, then wait.

    ``data_dir`` holds the WiredTiger files (``storage/``) and the server's log
    (``secantusd.log``); ``None`` keeps the data in memory only.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        startup_timeout: float = 30.0,
        shutdown_timeout: float = 15.0,
    ) -> None:
        self.data_dir = None if data_dir is None else Path(data_dir)
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._uri: str | None = None

    @property
    def uri(self) -> str:
        """``mongodb://127.0.0.1:PORT/`` of the running server."""
        if self._uri is None:
            raise EmbeddedServerError("the embedded server is not running")
        return self._uri

    @property
    def storage_path(self) -> str:
        return IN_MEMORY if self.data_dir is None else str(self.data_dir / "storage")

    def start(self) -> str:
        """Start the server and wait until it listens; returns its URI."""
        if self._process is not None:
            return self.uri
        executable = server_executable()
        if self.data_dir is None:
            log_dir = Path(tempfile.mkdtemp(prefix="agents-core-"))
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            log_dir = self.data_dir
        self._log_path = log_dir / "secantusd.log"
        command = [executable, "--host", "127.0.0.1", "--port", "0"]
        command += ["--storage-path", self.storage_path]
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=log_dir,
                start_new_session=True,  # a Ctrl-C in the terminal reaches us, not the server
            )
        try:
            port = self._wait_for_port()
        except BaseException:
            self.stop()
            raise
        self._uri = f"mongodb://127.0.0.1:{port}/"
        return self._uri

    def stop(self) -> None:
        """SIGTERM, then wait (SIGKILL after ``shutdown_timeout``). Safe to call twice."""
        process, self._process, self._uri = self._process, None, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.shutdown_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.data_dir is None and self._log_path is not None:  # our own temporary folder
            shutil.rmtree(self._log_path.parent, ignore_errors=True)
            self._log_path = None

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_for_port(self) -> int:
        assert self._process is not None
        assert self._log_path is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            log = self._log_path.read_text(errors="replace")
            match = _LISTENING.search(log)
            if match:
                return int(match["port"])
            if self._process.poll() is not None:
                raise EmbeddedServerError(
                    f"secantusd-py exited with code {self._process.returncode}: {_tail(log)}"
                )
            time.sleep(0.02)
        raise EmbeddedServerError(f"secantusd-py did not start within {self.startup_timeout} s")


def _tail(log: str, lines: int = 5) -> str:
    return " | ".join(log.strip().splitlines()[-lines:]) or "(no output)"
