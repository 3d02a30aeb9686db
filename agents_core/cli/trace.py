"""The trace commands of ``agents-core``: ``serve`` (the web trace view) and ``export-otel``.

    agents-core serve [--host 127.0.0.1] [--port 8000] [--token T]   # the trace view in the browser
    agents-core export-otel RUN_ID --endpoint URL         # a run (and its scores) as OTLP spans

These commands open the database the way every other command does (``MONGODB_URI``, else the
shared embedded server of ``AGENTS_CORE_DATA``), through ``agents_core.cli.common``, and print
stored text as text (never markup).

Design note (who may use ``serve``): the app answers only requests for the address it listens on
(DNS rebinding), and on an address that is not loopback only those that carry a token: the one
given (``--token`` or ``AGENTS_CORE_SERVE_TOKEN``; the variable keeps it out of ``ps``), else one
generated here. The URL printed carries it as ``?token=``, which the app trades for a cookie.

Design note (stopping ``serve``): uvicorn handles SIGINT and SIGTERM itself, shuts down, and then
raises the signal it caught again, so that the process ends the way it was asked to. For SIGTERM
the default action would end the process on the spot, before the ``with`` that holds the
embedded database is left (its lease on the shared server, or a private server itself). So
``serve`` turns SIGTERM into an exception for its whole duration: both signals then unwind through
that ``with``, the connection is closed, the server is let go (the shared one stops once idle),
and ``serve`` exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import sys
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from agents_core.cli import common, render
from agents_core.cli.common import JsonOption

if TYPE_CHECKING:
    from agents_core.db import Run, Settings
    from agents_core.trace.web import ThreadReadsFactory

__all__ = ["DEFAULT_OTLP_ENDPOINT", "TOKEN_ENV", "export_otel", "serve"]

#: The variable that gives ``serve`` its token (what ``--token`` says, out of ``ps``).
TOKEN_ENV = "AGENTS_CORE_SERVE_TOKEN"
#: The OTLP/HTTP traces endpoint used when neither ``--endpoint`` nor the variable is set.
DEFAULT_OTLP_ENDPOINT = "http://localhost:4318/v1/traces"


class _Terminated(Exception):
    """SIGTERM, raised where the program is so that ``with`` blocks unwind."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


def _url(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(
    host: Annotated[
        str,
        typer.Option(
            help="Address to bind (anything but loopback is reachable by others, and needs "
            "a token)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            envvar=TOKEN_ENV,
            show_envvar=True,
            help="Token every request must carry (Authorization: Bearer, or the cookie that "
            "the printed URL sets); one is generated when --host is not loopback.",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help='Print where it serves as one line of JSON ({"url", "host", "port"}).'
        ),
    ] = False,
) -> None:
    """Serve the read-only trace view (sessions, transcripts, run timelines) until Ctrl-C."""
    try:
        import uvicorn

        from agents_core.trace.web import check_token, create_app, is_loopback
    except ImportError as exc:
        common.fail(
            f"the trace view needs its extra: pip install 'agents-core[web]' ({exc})",
            as_json=as_json,
        )
    from agents_core.db import DatabaseError, connect
    from agents_core.embedded import EmbeddedServerError

    if token is not None:
        try:
            check_token(token)
        except ValueError as exc:
            common.fail(f"--token: {exc}", as_json=as_json, code=2)
    elif not is_loopback(host):
        token = secrets.token_urlsafe(32)
        render.err.print(
            Text(f"A token for this run is in the URL below (--token or {TOKEN_ENV} sets one).")
        )
    if not is_loopback(host):
        render.err.print(
            Text.assemble(
                ("warning: ", "bold yellow"),
                f"listening on {host}: anyone who can reach this address and has the token can "
                "read every session, and plain HTTP carries the token unencrypted.",
            )
        )
    started = False

    async def run_server(uri: str, settings: Settings) -> None:
        nonlocal started
        db = await connect(uri, settings=settings)  # before serving: a bad URI fails here
        try:
            config = uvicorn.Config(
                create_app(db, host=host, port=port, token=token, threads=_thread_reader()),
                host=host,
                port=port,
                lifespan="off",
                log_level="warning",
                access_log=False,
            )

            def announce() -> None:
                url = _url(host, port, token)
                if as_json:
                    common.print_json_line({"url": url, "host": host, "port": port})
                    return
                render.out.print(
                    Text(f"Trace view on {url} (read-only; Ctrl-C stops it)"),
                    soft_wrap=True,  # the URL in one piece, to copy
                )
                sys.stdout.flush()

            class Server(uvicorn.Server):
                async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                    await super().startup(sockets=sockets)
                    announce()  # listening: the address is said once it answers

            server = Server(config)
            with contextlib.suppress(SystemExit):  # uvicorn's exit when it cannot bind
                await server.serve()
            started = server.started
        finally:
            await db.close()

    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with common.database(announce=not as_json) as (uri, settings):
            asyncio.run(run_server(uri, settings))
        if not started:
            raise common.CliError(f"could not serve on {host}:{port}")
    except (KeyboardInterrupt, _Terminated):
        pass  # the server has shut down and the database is let go: a clean stop
    except common.CliError as exc:
        common.fail(str(exc), as_json=as_json, code=exc.code)
    except (EmbeddedServerError, DatabaseError) as exc:
        common.fail(str(exc), as_json=as_json)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not as_json:  # under --json, stdout holds the one line of where it served
        render.out.print(Text("Trace view stopped."))


def _thread_reader() -> ThreadReadsFactory | None:
    """What reads the trace view's ``/threads`` pages: LangGraph's threads, if its extra is
    installed (else those pages say they are not served)."""
    try:
        from agents_core.integrations.langgraph.threads import ThreadReader
    except ImportError:
        return None
    return ThreadReader


def export_otel(
    run_id: Annotated[
        str,
        typer.Argument(
            metavar="RUN_ID",
            help="The run's id, or its last digits (as tables print it), or its first.",
        ),
    ],
    endpoint: Annotated[
        str,
        typer.Option(
            envvar="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            help="OTLP/HTTP traces endpoint (protobuf).",
        ),
    ] = DEFAULT_OTLP_ENDPOINT,
    capture_content: Annotated[
        bool,
        typer.Option(
            "--capture-content",
            help="Also send tool arguments and results (they may hold personal data).",
        ),
    ] = False,
    provider: Annotated[
        str | None, typer.Option(help="gen_ai.provider.name of the model calls (e.g. openai).")
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE header of the export request (repeat).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Send one run to an OpenTelemetry collector as GenAI spans (invoke_agent, chat, tools)."""
    try:
        from agents_core.trace.otel import ExportError, export_run
    except ImportError as exc:
        common.fail(str(exc), as_json=as_json)
    headers: dict[str, str] = {}
    for item in header or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            common.fail(f"--header {item!r} is not KEY=VALUE", as_json=as_json, code=2)
        headers[key.strip()] = value
    wanted = common.checked_id(run_id, as_json=as_json, what="a run")

    async def work() -> tuple[Run, str]:
        from agents_core.db import AgentsRepository, NotFoundError, RunsRepository

        _, rid = await common.resolve(wanted, kinds=("run",))
        run = await RunsRepository().find_by_id(rid)
        try:
            agent_name = (await AgentsRepository().find_by_id(run.agent_id)).name
        except NotFoundError:  # the agent was deleted since: its id names it
            agent_name = str(run.agent_id)
        return run, agent_name

    found: list[tuple[Run, str]] = []
    common.run(work, found.append, as_json=as_json)
    run, agent_name = found[0]
    try:
        export_run(
            run,
            endpoint=endpoint,
            agent_name=agent_name,
            capture_content=capture_content,
            provider_name=provider,
            headers=headers,
        )
    except ExportError as exc:
        common.fail(str(exc), as_json=as_json)
    spans = 1 + len(run.model_calls) + len(run.tool_calls) + len(run.steps)
    if as_json:
        common.print_json(
            {
                "run_id": run.id,
                "endpoint": endpoint,
                "spans": spans,
                "score_events": len(run.scores),
            }
        )
        return
    scores = f" with {len(run.scores)} score event(s)" if run.scores else ""
    render.out.print(Text(f"Sent run {run.id} as {spans} spans{scores} to {endpoint}"))
