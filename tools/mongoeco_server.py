"""Serve mongoeco's MongoDB-wire server until SIGTERM/SIGINT (a second opinion on behaviour).

Runs under the interpreter of ``.venv-mongoeco`` (Python >= 3.13, installed from
``tools/requirements-mongoeco.txt``), never under ours: mongoeco needs Python >= 3.13 and we
support 3.11, so it is only ever run as a separate process (``tools/mongoeco_wire.sh`` starts
it, waits for a ping and stops it)::

    .venv-mongoeco/bin/python tools/mongoeco_server.py --port 0

mongoeco 4.11.0 ships no command line for its server; this is the few lines that start
``mongoeco.wire.AsyncMongoEcoProxyServer`` on a fresh in-memory engine (its default, the one that
passed our wire suite), bound to a loopback port (``0``: a free one chosen by the kernel). Once
it listens it prints one line, ``listening on HOST:PORT``, and flushes it; that is the readiness
signal (the same form SecantusDB logs). Everything is lost when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys


async def serve(host: str, port: int, engine_name: str, dialect: str) -> None:
    from mongoeco.engines.memory import MemoryEngine
    from mongoeco.engines.sqlite import SQLiteEngine
    from mongoeco.wire import AsyncMongoEcoProxyServer

    engine = MemoryEngine() if engine_name == "memory" else SQLiteEngine(":memory:")
    server = AsyncMongoEcoProxyServer(engine=engine, host=host, port=port, mongodb_dialect=dialect)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    address = await server.start()
    try:
        print(f"listening on {address.host}:{address.port}", flush=True)
        await stop.wait()
    finally:
        await server.close()
    print("stopped", flush=True)


def main() -> None:
    if sys.version_info < (3, 13):
        sys.exit("mongoeco needs Python >= 3.13: run this with .venv-mongoeco/bin/python")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    parser.add_argument("--engine", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--dialect", choices=("7.0", "8.0", "9.0"), default="7.0")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.engine, args.dialect))


if __name__ == "__main__":
    main()
