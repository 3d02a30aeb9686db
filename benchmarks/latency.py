"""A network between the benchmark and its server: a loopback TCP proxy that delays each
direction, and the benchmark pass that runs through it.

Usage::

    python -m benchmarks.latency --upstream 127.0.0.1:27017 --delay-ms 0.5   # prints its port
    python -m benchmarks --latency-ms 0.5        # the latency pass alone (make bench runs it too)

On one machine a command costs what the server spends on it; in production each command is
also a network round trip (0.5-2 ms in a data centre). The proxy delivers every chunk of bytes
``delay-ms`` after it arrived, in each direction, without holding back the chunks behind it:
a command and its reply cost one round trip more, however many are in flight. It runs as a
process of its own, so the CPU it spends is in no client's figures; its threads sleep with
``time.sleep`` (asyncio's timers round up to whole milliseconds on Linux).

The pass (``LATENCY_OPS``) times, through the proxy: a runner turn, an append, a read of the
latest 50 messages (ours against the raw PyMongo code doing the same), and the OpenAI Agents
SDK adapter's ``get_items(limit=50)`` and ``add_items`` (ours against the SDK's own
``MongoDBSession``), when the SDK is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from urllib.parse import quote_plus

from pymongo.uri_parser import parse_uri

__all__ = ["DEFAULT_DELAY_MS", "LATENCY_OPS", "proxied", "serve"]

#: One way, per direction: a round trip costs twice this more.
DEFAULT_DELAY_MS = 0.5
#: The labels of the ops the latency pass times (their start; the suite's labels).
LATENCY_OPS = (
    "runner.run",
    "messages.create",
    "messages.find_by_session(limit=50) [",
    "openai_agents.get_items(limit=50)",
    "openai_agents.add_items",
)
_CHUNK = 256 * 1024
_LISTENING = re.compile(r"^listening on 127\.0\.0\.1:(\d+)$")


def serve(upstream: tuple[str, int], delay_s: float, port: int = 0) -> None:
    """Accept on 127.0.0.1:``port`` (0: any free one, printed) and relay to ``upstream``,
    each direction delayed by ``delay_s``. Runs until killed."""
    listener = socket.create_server(("127.0.0.1", port))
    print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
    while True:
        client, _ = listener.accept()
        server = socket.create_connection(upstream)
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _relay(client, server, delay_s)
        _relay(server, client, delay_s)


def _relay(source: socket.socket, sink: socket.socket, delay_s: float) -> None:
    """Bytes from ``source`` to ``sink``, each chunk ``delay_s`` after it arrived."""
    chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

    def read() -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(_CHUNK):
                chunks.put((time.perf_counter() + delay_s, data))
        chunks.put((0.0, b""))

    def write() -> None:
        with contextlib.suppress(OSError):
            while True:
                due, data = chunks.get()
                if not data:
                    break
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    threading.Thread(target=read, daemon=True).start()
    threading.Thread(target=write, daemon=True).start()


@contextlib.contextmanager
def proxied(uri: str, delay_ms: float) -> Iterator[str]:
    """A URI that reaches ``uri``'s server through a proxy process delaying each direction by
    ``delay_ms``; the proxy is stopped on exit."""
    parsed = parse_uri(uri)
    host, port = parsed["nodelist"][0]
    # The credentials and the database (the embedded server runs with --auth) go through too.
    auth = ""
    if parsed["username"]:
        auth = f"{quote_plus(parsed['username'])}:{quote_plus(parsed['password'] or '')}@"
    path = "/" + (parsed["database"] or "")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.latency",
            "--upstream",
            f"{host}:{port}",
            "--delay-ms",
            str(delay_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        match = _LISTENING.match(process.stdout.readline().strip())
        if match is None:
            raise RuntimeError("the latency proxy did not start")
        options = uri.split("?", 1)[1] if "?" in uri else ""
        # directConnection: the server names its own address in hello; stay on the proxy.
        yield f"mongodb://{auth}127.0.0.1:{match[1]}{path}?directConnection=true" + (
            f"&{options}" if options else ""
        )
    finally:
        process.terminate()
        process.wait(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.latency",
        description="A loopback TCP proxy that delays each direction.",
    )
    parser.add_argument("--upstream", required=True, metavar="HOST:PORT")
    parser.add_argument("--delay-ms", type=float, default=DEFAULT_DELAY_MS)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    serve((host, int(port)), args.delay_ms / 1000, args.port)


if __name__ == "__main__":
    main()
