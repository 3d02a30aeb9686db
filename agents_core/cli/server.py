"""``agents-core server``: the embedded server of ``AGENTS_CORE_DATA``.

    agents-core server status        # whether it runs, where, and who uses it
    agents-core server start         # start it (if it is not running) and print its URI
    agents-core server stop          # stop it (its users get a moment to finish)

These never connect to a database: they read and change the data directory's record through
``agents_core.embedded``. Their JSON never loads the database layer; their text does for a
duration (``agents_core.trace.format_ms``, the one way durations are printed), which a running
server's warm worker, where ``status`` runs, has loaded already.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.text import Text

from agents_core.cli import common, render
from agents_core.cli.common import JsonOption
from agents_core.embedded import (
    EmbeddedServerError,
    Record,
    data_dir_from_env,
    server_status,
    start_server,
    stop_server,
)

__all__ = ["start", "status", "stop"]


def _record_json(record: Record, data_dir: str, **extra: Any) -> dict[str, Any]:
    started = datetime.fromtimestamp(record.started_at, UTC).isoformat()
    return {
        "data_dir": data_dir,
        "running": True,
        "uri": record.uri,
        "pid": record.pid,
        "port": record.port,
        "supervisor_pid": record.owner,
        "started_by_pid": record.started_by,
        "started_at": started,
        "idle_s": record.idle_s,
        "healthy": not record.problem,
        "problem": record.problem or None,
        **extra,
    }


def status(as_json: JsonOption = False) -> None:
    """Whether the embedded server of AGENTS_CORE_DATA runs, where, and who uses it."""
    try:
        data_dir = data_dir_from_env()
        found = server_status(data_dir)
    except EmbeddedServerError as exc:
        common.fail(common.embedded_failure(exc), as_json=as_json)
    if found is None:
        if as_json:
            common.print_json({"data_dir": str(data_dir), "running": False})
        else:
            render.out.print(Text(f"no embedded server is running for {data_dir}"))
        return
    record, users = found
    if as_json:
        common.print_json(_record_json(record, str(data_dir), users=users))
        return
    uptime = render.format_ms(max(datetime.now(UTC).timestamp() - record.started_at, 0.0) * 1000)
    using = f"used by {len(users)} process(es) now" if users else "unused now"
    render.out.print(Text.assemble(("Embedded SecantusDB ", "bold"), f"at {data_dir}"))
    render.out.print(
        Text(f"  {record.uri}  (pid {record.pid}, supervisor {record.owner}, up {uptime})")
    )
    idle = render.format_ms(record.idle_s * 1000)
    render.out.print(Text(f"  {using}; stops after {idle} unused"))
    if record.problem:
        render.out.print(Text.assemble(("  unhealthy: ", "bold red"), record.problem))
    if os.environ.get("MONGODB_URI"):
        render.out.print(
            Text("  (MONGODB_URI is set: the other commands use that server instead)", style="dim")
        )


def start(
    idle: Annotated[
        float | None,
        typer.Option(
            "--idle",
            min=0,
            help="Seconds unused before it stops (default AGENTS_CORE_EMBEDDED_IDLE_S, else 300).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Start the embedded server of AGENTS_CORE_DATA (if it is not running) and print its URI."""
    try:
        data_dir = data_dir_from_env()
        record, started = start_server(data_dir, idle_s=idle, on_start=common.starting)
    except EmbeddedServerError as exc:
        common.fail(common.embedded_failure(exc), as_json=as_json)
    if as_json:
        common.print_json(_record_json(record, str(data_dir), started=started))
        return
    state = "started" if started else "already running"
    render.out.print(Text.assemble(("Embedded SecantusDB ", "bold"), f"{state} at {data_dir}"))
    stops = f"stops after {render.format_ms(record.idle_s * 1000)} unused"
    render.out.print(Text(f"  {record.uri}  (pid {record.pid}); {stops}"))


def stop(as_json: JsonOption = False) -> None:
    """Stop the embedded server of AGENTS_CORE_DATA (its users get a moment to finish)."""
    try:
        data_dir = data_dir_from_env()
        with render.spinner("Stopping the embedded database…"):
            record = stop_server(data_dir)
    except KeyboardInterrupt:
        render.err.print("interrupted (the server goes on stopping)")
        raise typer.Exit(130) from None
    except EmbeddedServerError as exc:
        common.fail(common.embedded_failure(exc), as_json=as_json)
    if as_json:
        common.print_json({"data_dir": str(data_dir), "stopped": record is not None})
    elif record is None:
        render.out.print(Text(f"no embedded server was running for {data_dir}"))
    else:
        render.out.print(Text(f"stopped the embedded server of {data_dir} (pid {record.pid})"))
