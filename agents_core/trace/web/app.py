"""The read-only trace view: an ASGI app (Starlette) with server-rendered pages and JSON.

Routes (all ``GET``)::

    /                                   sessions, newest first (?user=, ?q=, ?status=, ?before=)
    /sessions/{id}                      transcript by turn, with its runs (?before=SEQ)
    /sessions/{id}/messages/{seq}       one message's whole text (text/plain)
    /overview                           runs, tokens, cost and errors per day, agent, model and
                                        tool, p50/p95 durations: SVG charts and tables (?days=,
                                        ?since=, ?until=)
    /runs                               runs of every session (?agent=, ?model=, ?status=, ?user=,
                                        ?since=, ?until=, ?score=name|name:label|name>=0.5,
                                        ?sort=newest|cost|tokens|duration)
    /runs/{id}                          the run's timeline (SVG waterfall), its calls and scores
    /runs/{id}/compare/{other}          two runs (a run and its replay) on one axis, side by side
    /search                             messages that contain a phrase (?q=, ?user=, ?since=,
                                        ?until=)
    /runs/{id}/tool-calls/{call}/{input|output}   a tool call's whole text (text/plain)
    /api/sessions, /api/sessions/{id}, /api/runs/{id}, /api/runs, /api/overview, /api/search
                                        the same data as JSON
    /threads, /threads/{id}             LangGraph threads (?after=), a thread's state and
                                        checkpoints (?before=CHECKPOINT): with ``threads=``
    /api/threads, /api/threads/{id}     the same as JSON

Who may ask: a request whose ``Host`` header is not the address the app is served on is refused
(400 without a well-formed one, 421 for another name: DNS rebinding), and with a token (required
on any address but loopback) a request without it gets 401, unless it carries it as
``Authorization: Bearer TOKEN``, in the cookie, or once as ``?token=``, which sets the cookie and
redirects to the same URL without it (``_access.py`` says why).

Design notes: templates are Jinja2 with autoescaping on for every template, so whatever a title,
message or tool output holds (``<script>``, ``{{ }}``) is shown as text; stored text is data,
never a template. The pages carry no script at all, and a Content-Security-Policy that forbids
scripts says so to the browser too. Long texts are cut in the page (``DISPLAY_CHARS``) with a
link to the whole text, served as ``text/plain`` with ``nosniff``.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agents_core.db import (
    Connection,
    DatabaseError,
    DatabaseUnavailableError,
    InvalidIdError,
    InvalidInputError,
    MessagesRepository,
    NotFoundError,
    RunStatus,
    Settings,
    StatsRepository,
    connect,
    default_connection,
)
from agents_core.db.documents import json_default
from agents_core.db.repositories import Overview, SearchResult
from agents_core.trace import (
    call_duration_ms,
    format_ms,
    format_score,
    group_turns,
    render_summary,
    run_duration_ms,
    run_timeline,
    turn_steps,
)
from agents_core.trace.web import _dashboard
from agents_core.trace.web._access import (
    COOKIE,
    HostRule,
    bearer,
    check_token,
    is_loopback,
    matches,
    split_query,
)
from agents_core.trace.web._reads import RUN_SORTS, RunSort, RunsPage, StatusFilter, TraceReads
from agents_core.trace.web._threads import ThreadReads, ThreadReadsFactory
from agents_core.trace.web._timeline import chart

__all__ = [
    "CHECKPOINTS_PER_PAGE",
    "DISPLAY_CHARS",
    "MESSAGES_PER_PAGE",
    "RUNS_PER_PAGE",
    "SESSIONS_PER_PAGE",
    "THREADS_PER_PAGE",
    "create_app",
]

logger = logging.getLogger(__name__)

#: Characters of one stored text shown in a page; the rest is behind a link.
DISPLAY_CHARS = 2_000
SESSIONS_PER_PAGE = 50
RUNS_PER_PAGE = 50
SEARCH_HITS = 50
#: The run listing's filter parameters (``/runs``, ``/api/runs``).
_RUN_PARAMS = ("agent", "model", "status", "user", "since", "until", "score", "sort")
MESSAGES_PER_PAGE = 200
THREADS_PER_PAGE = 50
CHECKPOINTS_PER_PAGE = 50

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_STATUSES: tuple[StatusFilter, ...] = ("all", "active", "archived")


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("agents_core.trace.web", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = format_ms
    env.filters["score"] = format_score
    env.filters["money"] = lambda value: f"${value:.6f}"
    env.filters["number"] = lambda value: f"{value:,}"
    env.filters["stamp"] = lambda value: value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    # One path segment, whatever it holds (a thread id may hold "/", "?", "#").
    env.filters["pathpart"] = lambda value: urllib.parse.quote(str(value), safe="")
    env.globals["DISPLAY_CHARS"] = DISPLAY_CHARS
    env.globals["call_duration_ms"] = call_duration_ms
    env.globals["run_duration_ms"] = run_duration_ms
    return env


class _BadRequest(Exception):
    pass


class _NotServed(Exception):
    """A page this app was made without (404)."""


#: The largest integer a parameter may hold (BSON's int64): beyond it nothing is stored.
_MAX_INT = 2**63 - 1
#: Characters of a text parameter (a search, a user id): more is no search a person typed.
_MAX_TEXT = 500


def _integer(raw: str) -> int | None:
    """``raw`` as a non-negative int64, or ``None``: ASCII digits only ("²".isdigit() is true,
    and int() takes other scripts' digits), at most 19 of them (int() of thousands of digits is
    slow, and refused beyond 4,300)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if value <= _MAX_INT else None


def _int_param(request: Request, name: str, *, minimum: int = 0) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    value = _integer(raw)
    if value is None:
        raise _BadRequest(f"{name} must be a whole number from {minimum} to {_MAX_INT}")
    if value < minimum:
        raise _BadRequest(f"{name} must be at least {minimum}")
    return value


def _text_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is not None and len(raw) > _MAX_TEXT:
        raise _BadRequest(f"{name} is longer than {_MAX_TEXT} characters")
    return raw.strip() or None if raw is not None else None


def _status_param(request: Request) -> StatusFilter:
    raw = request.query_params.get("status") or "all"
    for status in _STATUSES:
        if raw == status:
            return status
    raise _BadRequest("status must be all, active or archived")


def _json(value: Any, status_code: int = 200) -> Response:
    body = json.dumps(value, default=json_default, ensure_ascii=False)
    return Response(body, status_code, media_type="application/json")


def create_app(
    db: Connection | None = None,
    *,
    uri: str | None = None,
    settings: Settings | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    threads: ThreadReadsFactory | None = None,
) -> Starlette:
    """The trace view on ``db``; or on its own connection to ``uri``; or on ``init_db``'s.

    With ``uri`` the app connects at start-up and closes its connection at shutdown (ASGI
    lifespan); a ``db`` passed in is used as it is and never closed. ``threads`` makes the
    reader of the ``/threads`` pages for a connection (``agents_core.integrations.langgraph.
    threads.ThreadReader``); without it those pages answer 404.
    lifespan); a ``db`` passed in is used as it is and never closed.

    ``host`` and ``port`` are the address the app is served on (``port=0``: the one the server
    chose): a request naming another host is refused. A ``host`` that is not loopback needs a
    ``token`` (16 to 256 of ``A-Z a-z 0-9 . _ ~ -``); with one, every request must carry it.
    ``ValueError`` otherwise.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is not from 0 to 65535")
    if token is not None:
        check_token(token)
    elif not is_loopback(host):
        raise ValueError(f"the trace view on {host}, not a loopback address, needs a token")
    env = _environment()
    env.globals["threads_served"] = threads is not None
    state: dict[str, Connection] = {}
    thread_reader: list[tuple[Connection, ThreadReads]] = []  # of the connection served

    def reads() -> TraceReads:
        return TraceReads(state.get("db") or db or default_connection())

    def thread_reads() -> ThreadReads:
        if threads is None:
            raise _NotServed(
                "LangGraph threads are not served here (agents-core serve shows "
                "them when the langgraph extra is installed)"
            )
        connection = state.get("db") or db or default_connection()
        if not thread_reader or thread_reader[0][0] is not connection:
            thread_reader[:] = [(connection, threads(connection))]  # it sets up once
        return thread_reader[0][1]

    def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(**context)
        return HTMLResponse(html, status_code)

    def handled(
        endpoint: Callable[[Request], Awaitable[Response]], *, api: bool
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapper(request: Request) -> Response:
            try:
                return await endpoint(request)
            except (NotFoundError, InvalidIdError, _NotServed) as exc:
                status, message = 404, str(exc)
            except (InvalidInputError, _BadRequest) as exc:
                status, message = 400, str(exc)
            except DatabaseUnavailableError as exc:
                status, message = 503, str(exc)
            except DatabaseError as exc:
                status, message = 500, str(exc)
            except Exception:  # a bug of ours: logged whole, answered in one line
                logger.exception("the trace view failed on %s", request.url.path)
                status, message = 500, "internal error (see the server's log)"
            if api:
                return _json({"error": message}, status)
            return page("error.html", status, status=status, message=message)

        return wrapper

    async def sessions_data(request: Request) -> dict[str, Any]:
        user = _text_param(request, "user")
        query = _text_param(request, "q")
        status = _status_param(request)
        found = await reads().sessions(
            user_id=user,
            title=query,
            status=status,
            before=_text_param(request, "before"),
            limit=_int_param(request, "limit", minimum=1) or SESSIONS_PER_PAGE,
        )
        return {
            "sessions": found.sessions,
            "next": found.next_cursor,
            "user": user,
            "q": query,
            "status": status,
        }

    async def session_data(request: Request) -> tuple[Any, list[Any]]:
        found = await reads().session_page(
            request.path_params["session_id"],
            before=_int_param(request, "before"),
            limit=_int_param(request, "limit", minimum=1) or MESSAGES_PER_PAGE,
        )
        return found, group_turns(found.messages, found.runs)

    async def index(request: Request) -> Response:
        data = await sessions_data(request)
        return page("sessions.html", **data, statuses=_STATUSES)

    async def api_sessions(request: Request) -> Response:
        data = await sessions_data(request)
        return _json({"sessions": data["sessions"], "next": data["next"]})

    async def session(request: Request) -> Response:
        found, turns = await session_data(request)
        return page(
            "session.html",
            page=found,
            session=found.session,
            turns=[(turn, turn_steps(turn)) for turn in turns],
            summary=render_summary(turns).plain,
        )

    async def api_session(request: Request) -> Response:
        found, _ = await session_data(request)
        return _json(
            {
                "session": found.session,
                "messages": found.messages,
                "runs": found.runs,
                "older_before": found.older_before,
                "newer_before": found.newer_before,
            }
        )

    async def message_text(request: Request) -> Response:
        seq = _path_int(request, "seq")
        found = await reads().message(request.path_params["session_id"], seq)
        return PlainTextResponse(found.content)

    async def run(request: Request) -> Response:
        found = await reads().run(request.path_params["run_id"])
        return page("run.html", run=found, chart=chart(run_timeline(found)))

    async def api_run(request: Request) -> Response:
        return _json(await reads().run(request.path_params["run_id"]))

    def stats() -> StatsRepository:
        return StatsRepository(state.get("db") or db or default_connection())

    async def overview_data(request: Request) -> tuple[Overview, int | None]:
        since, until, days = _dashboard.overview_range(
            _int_param(request, "days", minimum=1),
            _dashboard.parse_day(_text_param(request, "since"), "since"),
            _dashboard.parse_day(_text_param(request, "until"), "until"),
        )
        return await stats().overview(since, until), days

    async def overview(request: Request) -> Response:
        found, days = await overview_data(request)
        return page("overview.html", **_dashboard.overview_context(found, days))

    async def api_overview(request: Request) -> Response:
        found, _ = await overview_data(request)
        return _json(_dashboard.overview_json(found))

    async def runs_data(request: Request) -> tuple[RunsPage, dict[str, str | None], RunSort]:
        params = {name: _text_param(request, name) for name in _RUN_PARAMS}
        where, sort = _dashboard.run_filter(params)
        found = await reads().runs(
            where,
            sort=sort,
            cursor=_text_param(request, "before"),
            limit=_int_param(request, "limit", minimum=1) or RUNS_PER_PAGE,
        )
        return found, params, sort

    async def runs(request: Request) -> Response:
        found, params, sort = await runs_data(request)
        query = urlencode({name: value for name, value in params.items() if value})
        return page(
            "runs.html",
            found=found,
            params=params,
            sort=sort,
            sorts=RUN_SORTS,
            statuses=[status.value for status in RunStatus],
            query=query,
        )

    async def api_runs(request: Request) -> Response:
        found, _, _ = await runs_data(request)
        return _json(
            {
                "runs": [_dashboard.run_row_json(row) for row in found.runs],
                "next": found.next_cursor,
                "ranked_of_newest": found.ranked_of_newest,
            }
        )

    async def compare(request: Request) -> Response:
        source = reads()
        left = await source.run(request.path_params["run_id"])
        right = await source.run(request.path_params["other"])
        context = _dashboard.compare_context(
            left, right, await source.turn_answer(left), await source.turn_answer(right)
        )
        return page("compare.html", **context)

    async def search_data(request: Request) -> tuple[SearchResult | None, dict[str, Any]]:
        params = {name: _text_param(request, name) for name in ("q", "user", "since", "until")}
        if params["q"] is None:
            return None, params
        since = _dashboard.parse_day(params["since"], "since")
        until = _dashboard.parse_day(params["until"], "until")
        found = await MessagesRepository(state.get("db") or db or default_connection()).search(
            params["q"],
            user_id=params["user"],
            since=None if since is None else datetime.combine(since, time.min, UTC),
            until=None if until is None else datetime.combine(until, time.max, UTC),
            limit=_int_param(request, "limit", minimum=1) or SEARCH_HITS,
        )
        return found, params

    async def search_page(request: Request) -> Response:
        found, params = await search_data(request)
        return page("search.html", found=found, **params)

    async def api_search(request: Request) -> Response:
        found, _ = await search_data(request)
        if found is None:
            raise _BadRequest("q is required")
        return _json(
            {
                "phrase": found.phrase,
                "method": found.method,
                "scanned": found.scanned,
                "searched_since": found.searched_since,
                "hits": [
                    {
                        "session_id": hit.session_id,
                        "session_title": hit.session_title,
                        "user_id": hit.user_id,
                        "seq": hit.seq,
                        "role": hit.role.value,
                        "created_at": hit.created_at,
                        "excerpt": hit.excerpt,
                        "match": [hit.start, hit.end],
                    }
                    for hit in found.hits
                ],
            }
        )

    async def tool_call_text(request: Request) -> Response:
        field = request.path_params["field"]
        if field not in ("input", "output"):
            raise NotFoundError("tool call field", field)
        call = await reads().tool_call(request.path_params["run_id"], request.path_params["call"])
        text = call.input if field == "input" else call.output or ""
        return PlainTextResponse(text)

    async def threads_data(request: Request) -> dict[str, Any]:
        found = await thread_reads().list(
            limit=_int_param(request, "limit", minimum=1) or THREADS_PER_PAGE,
            after=_text_param(request, "after"),
        )
        return {"threads": found.items, "next": found.next_cursor}

    async def thread_data(request: Request) -> Any:
        return await thread_reads().get(
            request.path_params["thread_id"],
            limit=_int_param(request, "limit", minimum=1) or CHECKPOINTS_PER_PAGE,
            before=_text_param(request, "before"),
        )

    async def threads_page(request: Request) -> Response:
        return page("threads.html", **await threads_data(request))

    async def api_threads(request: Request) -> Response:
        return _json(await threads_data(request))

    async def thread_page(request: Request) -> Response:
        return page("thread.html", thread=await thread_data(request))

    async def api_thread(request: Request) -> Response:
        return _json(await thread_data(request))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if uri is None:
            yield
            return
        state["db"] = await connect(uri, settings=settings)
        try:
            yield
        finally:
            await state.pop("db").close()

    def error_response(path: str, status: int, message: str) -> Response:
        """An error in the app's own form: JSON under ``/api/``, else the error page."""
        if path.startswith("/api/"):
            return _json({"error": message}, status)
        return page("error.html", status, status=status, message=message)

    routes = [
        Route("/", handled(index, api=False)),
        Route("/sessions/{session_id}", handled(session, api=False)),
        Route("/sessions/{session_id}/messages/{seq}", handled(message_text, api=False)),
        Route("/overview", handled(overview, api=False)),
        Route("/search", handled(search_page, api=False)),
        Route("/api/search", handled(api_search, api=True)),
        Route("/runs", handled(runs, api=False)),
        Route("/runs/{run_id}", handled(run, api=False)),
        Route("/runs/{run_id}/compare/{other}", handled(compare, api=False)),
        Route(
            "/runs/{run_id}/tool-calls/{call}/{field:str}",
            handled(tool_call_text, api=False),
        ),
        Route("/api/sessions", handled(api_sessions, api=True)),
        Route("/api/sessions/{session_id}", handled(api_session, api=True)),
        Route("/api/overview", handled(api_overview, api=True)),
        Route("/api/runs", handled(api_runs, api=True)),
        Route("/api/runs/{run_id}", handled(api_run, api=True)),
        Route("/threads", handled(threads_page, api=False)),
        Route("/threads/{thread_id:path}", handled(thread_page, api=False)),
        Route("/api/threads", handled(api_threads, api=True)),
        Route("/api/threads/{thread_id:path}", handled(api_thread, api=True)),
    ]
    middleware = [
        Middleware(_SecurityHeaders),
        Middleware(_HostCheck, rule=HostRule.for_bind(host, port), refuse=error_response),
    ]
    if token is not None:
        middleware.append(Middleware(_TokenCheck, token=token, refuse=error_response))
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware)

    async def http_error(request: Request, exc: Exception) -> Response:
        """404, 405 and any other error the router answers, in the app's own form."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return error_response(request.url.path, status, message.lower())

    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette sends this one from outside every middleware: the headers go on it here.
        logger.error("the trace view failed on %s", request.url.path, exc_info=exc)
        return PlainTextResponse("internal error", 500, headers=_HEADERS)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, server_error)
    return app


class _SecurityHeaders:
    """Every answer carries ``_HEADERS`` (errors and the router's 404 and 405 included): set
    here once rather than by each response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


#: How an access check answers a refused request: (path, status, message) to a response.
_Refuse = Callable[[str, int, str], Response]


class _HostCheck:
    """Refuses a request whose ``Host`` header is not this server's address (``HostRule``):
    400 without a well-formed one, 421 for another server's (DNS rebinding). Logged once."""

    def __init__(self, app: ASGIApp, *, rule: HostRule, refuse: _Refuse) -> None:
        self.app = app
        self.rule = rule
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        values = [v.decode("latin-1") for k, v in scope["headers"] if k == b"host"]
        server = scope.get("server")
        refusal = self.rule.refusal(
            values, scheme=scope["scheme"], local_port=server[1] if server else None
        )
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        shown = [value[:100] for value in values]
        logger.warning("refused a request for host %r (%d): %s", shown, status, message)
        await self.refuse(scope["path"], status, message)(scope, receive, send)


class _TokenCheck:
    """Lets a request in with the token (``Authorization: Bearer``, the cookie, or ``?token=``,
    which sets the cookie and redirects to the URL without it); 401 otherwise, with nothing
    else said. The token is never logged."""

    def __init__(self, app: ASGIApp, *, token: str, refuse: _Refuse) -> None:
        self.app = app
        self.token = token
        self.expected = token.encode()
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        given, target = split_query(scope.get("raw_path") or b"/", scope["query_string"])
        if given:
            if len(given) == 1 and matches(given[0], self.expected):
                response: Response = RedirectResponse(target, status_code=303)
                response.set_cookie(
                    COOKIE,
                    self.token,
                    path="/",
                    httponly=True,
                    samesite="strict",
                    secure=scope["scheme"] == "https",
                )
                await response(scope, receive, send)
                return
        elif matches(bearer(connection.headers.get("authorization")), self.expected) or (
            matches(connection.cookies.get(COOKIE), self.expected)
        ):
            await self.app(scope, receive, send)
            return
        logger.info("refused a request without a valid token for %s", scope["path"][:200])
        response = self.refuse(
            scope["path"],
            401,
            "a valid token is required (open the address agents-core serve printed)",
        )
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)


def _path_int(request: Request, name: str) -> int:
    raw = request.path_params[name]
    value = _integer(raw) if isinstance(raw, str) else None
    if value is None:
        raise NotFoundError("message", raw[:40] if isinstance(raw, str) else raw)
    return value
