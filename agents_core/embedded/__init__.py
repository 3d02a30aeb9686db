"""A local MongoDB-wire server (SecantusDB): the default database when no ``MONGODB_URI`` is set.

Usage::

    from agents_core.embedded import EmbeddedServer, database_target

    with database_target() as target:           # MONGODB_URI, else the embedded server
        await init_db(target.uri)

    with EmbeddedServer("./.agents-core") as server:   # that data directory's shared server
        await init_db(server.uri)

    with EmbeddedServer() as server:            # a private, temporary server (tests, benchmarks)
        ...

**One server per data directory.** ``EmbeddedServer(data_dir)`` does not start a server of its
own: the first process that needs the directory starts one, with a small supervisor process
(``agents_core.embedded.supervisor``) that records it in ``server.json`` under an ``flock``;
every other process uses that server for as long as it holds a lease (a shared ``flock``). The
supervisor stops the server once nobody has used it for ``AGENTS_CORE_EMBEDDED_IDLE_S`` seconds
(or on ``stop_server()``, ``agents-core server stop``), and the server dies with its supervisor,
so a process killed inside ``with EmbeddedServer(...)`` leaves nothing that holds the directory.
Leaving the ``with`` block is instant: it ends the lease, it does not wait for a shutdown.

The URI carries ``retryWrites=false``: SecantusDB keeps a record per retryable write and scans
them all on every write, so a long-lived server slows down without it. It carries the server's
credentials too: every server started here refuses every command without them
(``agents_core.embedded.secure``), and the data directory is its owner's alone (0700).

SecantusDB is GPL-2.0, so it is only ever *executed* (its ``secantusd-py`` script, from the
``embedded`` extra: ``pip install agents-core[embedded]``), never imported.

The package, each module importing only those above it (all standard library)::

    errors       EmbeddedServerError, DataDirectoryError
    config       AGENTS_CORE_DATA and AGENTS_CORE_EMBEDDED_IDLE_S, read here only
    ownership    whose files these are: a data directory, its files and sockets must be ours
    launcher     the ``agents-core`` entry point: a command sent to the warm worker
    processes    secantusd-py started, awaited, stopped; what a pid is
    data_dir     the files of a data directory: locks, record, leases
    secure       the server started with --auth, its first user created while nobody else can
    server       EmbeddedServer, database_target, server_status, start_server, stop_server
    supervisor   ``python -m agents_core.embedded.supervisor DIR``: one per running server

Design note: the names below are imported from their modules on first use, not here, because
importing ``agents_core.embedded.launcher`` (every ``agents-core`` command) runs this file
first, and the launcher must stay as cheap as ``errors``, ``config``, ``ownership`` and itself.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (the launcher's cost)
if TYPE_CHECKING:
    from agents_core.embedded.config import DATA_ENV as DATA_ENV
    from agents_core.embedded.config import (
        DEFAULT_DATA_DIR,
        DEFAULT_IDLE_S,
        data_dir_from_env,
        idle_s_from_env,
        resolve_data_dir,
    )
    from agents_core.embedded.config import IDLE_ENV as IDLE_ENV
    from agents_core.embedded.data_dir import SERVER_LOG as SERVER_LOG
    from agents_core.embedded.data_dir import STOP_GRACE_S as STOP_GRACE_S
    from agents_core.embedded.data_dir import SUPERVISOR_LOG as SUPERVISOR_LOG
    from agents_core.embedded.data_dir import LockTimeoutError as LockTimeoutError
    from agents_core.embedded.data_dir import Record
    from agents_core.embedded.data_dir import ServerDir as ServerDir
    from agents_core.embedded.errors import DataDirectoryError, EmbeddedServerError
    from agents_core.embedded.processes import locking_pids as locking_pids
    from agents_core.embedded.processes import process_command as process_command
    from agents_core.embedded.processes import server_executable
    from agents_core.embedded.processes import spawn_server as spawn_server
    from agents_core.embedded.processes import wait_for_port as wait_for_port
    from agents_core.embedded.server import (
        DatabaseTarget,
        EmbeddedServer,
        database_target,
        server_status,
        start_server,
        stop_server,
    )

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_IDLE_S",
    "DataDirectoryError",
    "DatabaseTarget",
    "EmbeddedServer",
    "EmbeddedServerError",
    "Record",
    "data_dir_from_env",
    "database_target",
    "idle_s_from_env",
    "resolve_data_dir",
    "server_executable",
    "server_status",
    "start_server",
    "stop_server",
]

#: Each name this package offers, and the module it comes from. ``__all__`` is what is
#: supported; the others are here because ``agents_core.embedded`` has always offered them.
_HOMES = {
    "DATA_ENV": "config",
    "DEFAULT_DATA_DIR": "config",
    "DEFAULT_IDLE_S": "config",
    "IDLE_ENV": "config",
    "data_dir_from_env": "config",
    "idle_s_from_env": "config",
    "resolve_data_dir": "config",
    "SERVER_LOG": "data_dir",
    "STOP_GRACE_S": "data_dir",
    "SUPERVISOR_LOG": "data_dir",
    "LockTimeoutError": "data_dir",
    "Record": "data_dir",
    "ServerDir": "data_dir",
    "DataDirectoryError": "errors",
    "EmbeddedServerError": "errors",
    "locking_pids": "processes",
    "process_command": "processes",
    "server_executable": "processes",
    "spawn_server": "processes",
    "wait_for_port": "processes",
    "DatabaseTarget": "server",
    "EmbeddedServer": "server",
    "database_target": "server",
    "server_status": "server",
    "start_server": "server",
    "stop_server": "server",
}


if not TYPE_CHECKING:  # type checkers read the imports above: a misspelt name stays an error

    def __getattr__(name: str) -> object:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
        globals()[name] = value  # once: later lookups find it without coming here
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
