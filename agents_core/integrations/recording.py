"""Framework runs recorded in agents-core by a background writer that never blocks the agent.

The integrations of agent frameworks (``openai_agents.AgentsCoreTracingProcessor``, and a
LangChain callback handler built the same way) turn what the framework reports into one
``FrameworkRun`` per finished run and hand it to a ``RunWriter``::

    writer = RunWriter.from_uri("mongodb://localhost:27017/app")   # or RunWriter(connection)
    writer.submit(FrameworkRun(source="my-framework", external_id=run_id, ...))  # never blocks
    writer.force_flush(timeout=5.0)    # True once everything submitted so far is handled
    writer.shutdown(timeout=5.0)       # drain, close its connection, stop its thread

Design notes:

- **Never in the agent's way.** Frameworks call their tracers synchronously, from the agent's
  own thread and event loop. ``submit`` only puts the run in a bounded queue
  (``max_queue_size``, 8,192 as the OpenAI Agents SDK's ``BatchTraceProcessor``) and returns;
  it never blocks and never raises. A run that finds the queue full, or the writer shut down,
  is dropped: counted (``stats()``) and logged once, not once per run.
- **A thread and a loop of its own.** A ``Connection`` belongs to the event loop it was opened
  on (``WrongEventLoopError`` elsewhere), and the agent's loop must not wait for the database.
  The writer runs an event loop in a daemon thread, started by the first ``submit``, with a
  connection opened there: from a URI (``from_uri``), or from a given ``Connection``'s URI,
  database and settings (a connection for the writer alone, closed by ``shutdown``). A
  ``Connection`` on an injected client has no URI: the in-memory mock's client is used as it
  is (it belongs to no loop), a PyMongo ``AsyncMongoClient`` cannot be (it is bound to the loop
  it was created on): ``InvalidStateError`` at once, use ``from_uri``. Without a connection the
  writer follows the layer's (``init_db``'s), found when it first writes.
- **Batches.** The writer wakes when the queue reaches ``export_trigger_ratio`` of its bound,
  when ``schedule_delay`` has passed, or on ``force_flush``/``shutdown``, and writes up to
  ``max_batch_size`` runs at a time with ``RunsRepository.insert_finished``: one ``insert`` for
  the batch (one more when a tool call's text is large enough to spill). Sessions and agents
  are found or created once and remembered (a session for ``SESSION_CACHE_SECONDS``, so one
  deleted meanwhile is looked up again), an agent's tools enabled once each; the sessions a
  batch names that are not remembered are found or created together (one ``find``, one
  ``insert`` for the new ones), so runs that each get a session of their own cost two
  commands a batch, not two a run.
- **Retries never duplicate.** A run's ``_id`` is derived from its ``source`` and
  ``external_id``, so a batch retried after a network error (the first insert may have landed)
  stores each run once. A batch that fails on an unreachable server is retried ``retries``
  times, then counted as failed and logged once; a run the layer refuses (a value beyond its
  limits) is counted as failed alone, the rest of its batch written.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import queue
import re
import threading
import time
import weakref
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError, InvalidURI
from pymongo.uri_parser import parse_uri

from agents_core.db import (
    AgentsRepository,
    Connection,
    CreateAgentDTO,
    ExternalSessionDTO,
    FinishedRun,
    FinishedToolCall,
    ModelCall,
    Price,
    RunsRepository,
    RunStatus,
    RunStep,
    SessionsRepository,
    Settings,
)
from agents_core.db.client import DEFAULT_DATABASE, connect, default_connection
from agents_core.db.config import mask_uri
from agents_core.db.errors import (
    DatabaseUnavailableError,
    InvalidInputError,
    InvalidStateError,
)

__all__ = [
    "SESSION_CACHE_SECONDS",
    "AgentRef",
    "FrameworkRun",
    "RunWriter",
    "SessionRef",
    "WriterStats",
    "price_of",
    "token_count",
    "uri_database",
]

logger = logging.getLogger("agents_core.integrations")

#: How long the writer remembers the id of a session it found or created.
SESSION_CACHE_SECONDS = 60.0
#: Most sessions and agents the writer remembers (the oldest is forgotten first).
_CACHE_ENTRIES = 10_000
#: Seconds between a failed batch and its retry (doubled at each retry).
_RETRY_BACKOFF = 0.5
#: How often a waiting ``force_flush`` checks that the writer's thread is alive, in seconds.
_WAIT_SLICE = 0.5
#: What ``shutdown`` at interpreter exit waits for the queue to drain, at most.
_EXIT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class SessionRef:
    """The session a framework run belongs to.

    Either an existing session (``SessionRef(id=...)``), or the caller's own id of the
    conversation: ``external_id`` in ``namespace``, scoped by ``user_id``, found or created
    with ``SessionsRepository.get_or_create_by_external_id`` (``title`` is given to a session
    created here).
    """

    id: ObjectId | None = None
    external_id: str | None = None
    namespace: str | None = None
    user_id: str | None = None
    title: str | None = None

    def __post_init__(self) -> None:
        if (self.id is None) == (self.external_id is None and self.namespace is None):
            raise InvalidInputError(
                "session", "give either an id or an external id with its namespace"
            )
        if self.id is None and (self.external_id is None or self.namespace is None):
            raise InvalidInputError("session", "an external id needs its namespace, and back")


@dataclass(frozen=True, slots=True)
class AgentRef:
    """An agent of a framework run, by name, with the tools it had: found or created by name
    (``AgentsRepository.get_or_create``), each tool enabled on it."""

    name: str
    tools: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FrameworkRun:
    """A finished run of an agent framework, as its integration reports it to ``RunWriter``.

    ``external_id`` is the framework's id of the run (a trace id), unique per ``source``;
    ``part`` names a part of a run reported in parts (``FinishedRun.part``: appended to the
    run once stored).
    ``agents[0]`` is the run's agent; every agent named is found or created with its tools (a
    handoff's target too). ``calls`` are the model calls, tool calls and steps in the order they
    happened: their order is what the views show, never re-sorted by a clock.
    """

    source: str
    external_id: str
    session: SessionRef
    agents: tuple[AgentRef, ...]
    started_at: datetime
    completed_at: datetime
    status: RunStatus = RunStatus.completed
    error: str | None = None
    calls: Sequence[ModelCall | FinishedToolCall | RunStep] = ()
    part: str | None = None


@dataclass(frozen=True, slots=True)
class WriterStats:
    """What a ``RunWriter`` did with the runs it was given."""

    #: Runs put in the queue.
    submitted: int = 0
    #: Runs stored (a run found stored already, by a retry, included).
    written: int = 0
    #: Runs never queued (queue full, writer shut down) or given up by an integration (counted
    #: there with ``RunWriter.count_dropped``: e.g. a trace that never ended).
    dropped: int = 0
    #: Runs queued but not stored: the server stayed unreachable, or refused them.
    failed: int = 0
    #: Runs in the queue or being written now.
    pending: int = 0


@dataclass(slots=True)
class _Counters:
    submitted: int = 0
    written: int = 0
    dropped: int = 0
    failed: int = 0
    #: Runs taken out of the queue and written or given up (``force_flush`` waits for it).
    handled: int = 0
    warned: set[str] = field(default_factory=set)


class RunWriter:
    """Writes finished framework runs from a bounded queue, in batches, on a thread of its own.

    ``RunWriter()`` writes through the layer's connection (``init_db``'s, opened again on the
    writer's loop); ``RunWriter(connection)`` through that connection's database;
    ``RunWriter.from_uri(uri)`` through a connection of its own. See the module's notes.
    """

    def __init__(
        self,
        connection: Connection | None = None,
        *,
        max_queue_size: int = 8192,
        max_batch_size: int = 128,
        schedule_delay: float = 1.0,
        export_trigger_ratio: float = 0.7,
        retries: int = 2,
    ) -> None:
        if connection is not None and not isinstance(connection, Connection):
            raise InvalidInputError(
                "connection", f"must be a Connection, not {type(connection).__name__}"
            )
        if connection is not None:
            _check_usable_elsewhere(connection)
        if max_queue_size < 1 or max_batch_size < 1 or retries < 0 or schedule_delay <= 0:
            raise InvalidInputError("options", "sizes and delays must be positive")
        if not 0 < export_trigger_ratio <= 1:
            raise InvalidInputError("export_trigger_ratio", "must be in (0, 1]")
        self._given = connection
        self._uri: tuple[str, str, Settings] | None = None
        self._queue: queue.Queue[FrameworkRun] = queue.Queue(maxsize=max_queue_size)
        self._max_batch_size = max_batch_size
        self._schedule_delay = schedule_delay
        self._trigger_size = max(1, int(max_queue_size * export_trigger_ratio))
        self._retries = retries
        self._counters = _Counters()
        self._lock = threading.Lock()
        self._handled = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        #: The writer's connection, opened on its loop by the first write (its thread only).
        self._database: _Database | None = None
        self._closed = False
        #: The last batch found the server unreachable (later ones are tried once).
        self._down = False
        self._deadline: float | None = None
        self._at_exit = _AtExit(self)

    @classmethod
    def from_uri(
        cls,
        uri: str,
        *,
        database: str | None = None,
        settings: Settings | None = None,
        **options: Any,
    ) -> RunWriter:
        """A writer with a connection of its own, opened on its thread when it first writes.

        The URI is checked now (``InvalidInputError``). ``database``: else the URI's path, else
        ``agents_core``. The connection creates the layer's indexes when it opens, so it works
        on a database ``init_db`` never saw. ``options`` as for the constructor.
        """
        name = database or uri_database(uri) or DEFAULT_DATABASE
        writer = cls(**options)
        writer._uri = (uri, name, settings or Settings())
        return writer

    # -----------------------------------------------------------------------------------------
    # Called by integrations, from any thread

    def submit(self, run: FrameworkRun) -> bool:
        """Queue ``run`` for writing; ``False`` if it was dropped (counted, logged once).

        Never blocks and never raises.
        """
        try:
            with self._lock:
                if self._closed:
                    reason = "the run writer is shut down"
                else:
                    self._queue.put_nowait(run)
                    self._counters.submitted += 1
                    reason = None
            if reason is None:
                self._started()
                if self._queue.qsize() >= self._trigger_size:
                    self._signal()
                return True
        except queue.Full:
            reason = f"the queue of runs to write is full ({self._queue.maxsize})"
        except Exception as exc:  # never into the agent
            reason = f"unexpected {type(exc).__name__}: {exc}"
        self.count_dropped(1, reason)
        return False

    def count_dropped(self, count: int, reason: str) -> None:
        """Count ``count`` runs an integration could not turn into a ``FrameworkRun`` (or that
        were never queued); the first time for each ``reason``, log it. ``count`` 0: only the
        log (what was lost is not a run: a span, counted by the integration)."""
        with self._lock:
            self._counters.dropped += count
        self._warn_once(reason, f"agents-core: run(s) not recorded: {reason}")

    def force_flush(self, timeout: float | None = None) -> bool:
        """Wait until every run submitted so far is written or given up (``True``), or until
        ``timeout`` seconds have passed (``False``). Never raises."""
        with self._lock:
            target = self._counters.submitted
            thread = self._thread
        if thread is None or threading.current_thread() is thread:
            return self._counters.handled >= target
        deadline = None if timeout is None else time.monotonic() + timeout
        self._signal()
        with self._handled:
            while self._counters.handled < target:
                if not thread.is_alive():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._handled.wait(_WAIT_SLICE if left is None else min(left, _WAIT_SLICE))
            return True

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop taking runs, write what is queued (for at most ``timeout`` seconds: what is
        left then is counted as failed), close the writer's connection and stop its thread.

        ``True`` if the thread finished within ``timeout``. Safe to call twice. Never raises.
        """
        with self._lock:
            self._closed = True
            if timeout is not None and self._deadline is None:
                self._deadline = time.monotonic() + timeout
            thread = self._thread
        self._at_exit.cancel()
        if thread is None or threading.current_thread() is thread:
            return True
        self._signal()
        thread.join(timeout)
        return not thread.is_alive()

    def stats(self) -> WriterStats:
        """A snapshot of what was submitted, written, dropped and failed so far."""
        with self._lock:
            counters = self._counters
            return WriterStats(
                submitted=counters.submitted,
                written=counters.written,
                dropped=counters.dropped,
                failed=counters.failed,
                pending=counters.submitted - counters.handled,
            )

    # -----------------------------------------------------------------------------------------
    # The writer's thread

    def _started(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="agents-core-run-writer", daemon=True
            )
            self._thread.start()
        self._at_exit.register()

    def _signal(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # its loop has just closed
                loop.call_soon_threadsafe(wake.set)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main())
        finally:
            self._loop = None
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        wake = self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        # What was submitted (or flushed) before this loop could be woken is written at once.
        wake.set()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self._schedule_delay)
                wake.clear()
                closing = self._closed
                try:
                    await self._drain()
                except Exception as exc:  # never let the thread die: count and go on
                    self._warn_once("writer", f"agents-core: run writer error ({exc!r})")
                if closing:
                    break
        finally:
            self._give_up_queued("the run writer was shut down before writing them")
            if self._database is not None:
                await self._database.close()
                self._database = None

    async def _drain(self) -> None:
        """Write batches until the queue is empty."""
        while True:
            batch: list[FrameworkRun] = []
            while len(batch) < self._max_batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not batch:
                return
            if self._past_deadline():
                self._handle(batch, written=0, failed=len(batch))
                self._warn_once(
                    "deadline", "agents-core: runs not written before shutdown's timeout"
                )
                continue
            await self._write(batch)

    async def _open(self) -> _Database:
        if self._uri is not None:
            uri, name, settings = self._uri
            return _Database(await connect(uri, database=name, settings=settings))
        given = self._given or default_connection()
        _check_usable_elsewhere(given)
        if given.uri is None:  # an injected client that belongs to no loop (the mock's)
            connection = await connect(
                client=given.client,
                database=given.database.name,
                settings=given.settings,
                create_indexes=False,
            )
        else:
            connection = await connect(
                given.uri,
                database=given.database.name,
                settings=given.settings,
                create_indexes=False,  # the given connection created them
            )
        return _Database(connection)

    async def _write(self, batch: list[FrameworkRun]) -> None:
        """Write ``batch``; retried while the server is unreachable, unless it was already at
        the previous batch (then each batch is tried once, and none while shutting down)."""
        attempt = 0
        while True:
            if self._down and self._closed:
                self._failed(batch, DatabaseUnavailableError("the server was unreachable"))
                return
            try:
                await self._bounded(self._insert(batch))
            except DatabaseUnavailableError as exc:
                if self._down or attempt >= self._retries or self._past_deadline():
                    self._down = True
                    self._failed(batch, exc)
                    return
                await asyncio.sleep(_RETRY_BACKOFF * 2**attempt)
                attempt += 1
                continue
            except InvalidInputError as exc:
                if len(batch) > 1:  # find the run the layer refuses: write them one by one
                    for run in batch:
                        await self._write([run])
                    return
                self._failed(batch, exc)
                return
            except Exception as exc:
                self._failed(batch, exc)
                return
            self._down = False
            self._handle(batch, written=len(batch), failed=0)
            return

    async def _insert(self, batch: list[FrameworkRun]) -> None:
        database = self._database
        if database is None:
            database = self._database = await self._open()
        # The sessions not known yet: one call for the batch.
        await database.find_sessions([run.session for run in batch])
        finished = [await database.finished(run) for run in batch]
        await database.runs.insert_finished(finished)

    async def _bounded(self, write: Awaitable[None]) -> None:
        """``write``, cut off (``TimeoutError``) at ``shutdown``'s deadline if there is one."""
        if self._deadline is None:
            await write
            return
        await asyncio.wait_for(write, max(self._deadline - time.monotonic(), 0.0))

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _failed(self, batch: list[FrameworkRun], exc: BaseException) -> None:
        self._handle(batch, written=0, failed=len(batch))
        which = f"{batch[0].source} run {batch[0].external_id}" if len(batch) == 1 else "runs"
        self._warn_once(
            f"failed:{type(exc).__name__}",
            f"agents-core: {which} not written ({type(exc).__name__}: {exc})",
        )

    def _handle(self, batch: list[FrameworkRun], *, written: int, failed: int) -> None:
        with self._handled:
            self._counters.written += written
            self._counters.failed += failed
            self._counters.handled += len(batch)
            self._handled.notify_all()

    def _give_up_queued(self, reason: str) -> None:
        left: list[FrameworkRun] = []
        while True:
            try:
                left.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if left:
            self._handle(left, written=0, failed=len(left))
            self._warn_once("left", f"agents-core: {len(left)} run(s) not written: {reason}")

    def _warn_once(self, kind: str, message: str) -> None:
        with self._lock:
            if kind in self._counters.warned:
                return
            self._counters.warned.add(kind)
        logger.warning("%s (counted from now on in RunWriter.stats(), logged once)", message)


class _Database:
    """The writer's connection, and what it remembers of sessions and agents."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.runs = RunsRepository(connection)
        self.sessions = SessionsRepository(connection)
        self.agents = AgentsRepository(connection)
        self._sessions: dict[tuple[str, str | None, str], tuple[ObjectId, float]] = {}
        self._agents: dict[str, tuple[ObjectId, set[str]]] = {}

    async def finished(self, run: FrameworkRun) -> FinishedRun:
        if not run.agents:
            raise InvalidInputError("agents", "a run needs its agent")
        agent_ids = [await self._agent(agent) for agent in run.agents]
        return FinishedRun(
            source=run.source,
            external_id=run.external_id,
            session_id=await self._session(run.session),
            agent_id=agent_ids[0],
            status=run.status,
            error=run.error,
            started_at=run.started_at,
            completed_at=run.completed_at,
            calls=list(run.calls),
            part=run.part,
        )

    async def find_sessions(self, refs: list[SessionRef]) -> None:
        """Find or create the sessions named by external id that are not remembered
        (``get_or_create_many_by_external_id``: a ``find`` and, for new ones, an ``insert``)."""
        now = time.monotonic()
        wanted: dict[tuple[str, str | None, str], ExternalSessionDTO] = {}
        for ref in refs:
            if ref.external_id is None or ref.namespace is None:
                continue
            key = (ref.namespace, ref.user_id, ref.external_id)
            cached = self._sessions.get(key)
            if (cached is None or cached[1] <= now) and key not in wanted:
                wanted[key] = ExternalSessionDTO(
                    external_id=ref.external_id,
                    namespace=ref.namespace,
                    user_id=ref.user_id,
                    title=ref.title,
                )
        if not wanted:
            return
        sessions = await self.sessions.get_or_create_many_by_external_id(list(wanted.values()))
        for key, session in zip(wanted, sessions, strict=True):
            _remember(self._sessions, key, (session.id, now + SESSION_CACHE_SECONDS))

    async def _session(self, ref: SessionRef) -> ObjectId:
        if ref.id is not None:
            return ref.id
        assert ref.external_id is not None
        assert ref.namespace is not None
        key = (ref.namespace, ref.user_id, ref.external_id)
        cached = self._sessions.get(key)
        if cached is None:  # not found by find_sessions (a run given alone)
            await self.find_sessions([ref])
            cached = self._sessions[key]
        return cached[0]

    async def _agent(self, ref: AgentRef) -> ObjectId:
        known = self._agents.get(ref.name)
        if known is None:
            agent = await self.agents.get_or_create(
                CreateAgentDTO(name=ref.name, tools=list(dict.fromkeys(ref.tools)))
            )
            known = (agent.id, set(agent.tools))
            _remember(self._agents, ref.name, known)
        agent_id, tools = known
        for tool in ref.tools:
            if tool not in tools:
                await self.agents.enable_tool(agent_id, tool)
                tools.add(tool)
        return agent_id

    async def close(self) -> None:
        """Close the writer's connection (an injected client it shares is left open)."""
        await self.connection.close()


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_ENTRIES and key not in cache:
        del cache[next(iter(cache))]
    cache[key] = value


class _AtExit:
    """Shuts a writer down at interpreter exit (bounded), without keeping it alive."""

    def __init__(self, writer: RunWriter) -> None:
        self._writer = weakref.ref(writer)
        self._registered = False

    def register(self) -> None:
        if not self._registered:
            self._registered = True
            atexit.register(self)

    def cancel(self) -> None:
        if self._registered:
            self._registered = False
            atexit.unregister(self)

    def __call__(self) -> None:
        writer = self._writer()
        if writer is not None:
            writer.shutdown(_EXIT_TIMEOUT)


def _check_usable_elsewhere(connection: Connection) -> None:
    """Refuse a connection whose client is bound to its event loop and has no URI to reopen."""
    if connection.uri is None and isinstance(connection.client, AsyncMongoClient):
        raise InvalidStateError(
            "connection",
            connection.database.name,
            "its client was injected (no URI) and is bound to its event loop: the run writer "
            "writes from a thread and loop of its own; give it a URI (from_uri), or init_db a URI",
        )


#: The date of a model snapshot's name (``gpt-4.1-2025-04-14``: a snapshot of ``gpt-4.1``).
_SNAPSHOT_DATE = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def price_of(prices: Mapping[str, Price], *models: str | None) -> Price | None:
    """The price of a model call: of the first of ``models`` (the model that answered, then
    the one asked for) that ``prices`` names, else of the first whose name without a
    snapshot's date it names (a provider answers ``gpt-4.1`` as ``gpt-4.1-2025-04-14``);
    ``None``: none is priced."""
    names = [model for model in models if model]
    for name in [*names, *(_SNAPSHOT_DATE.sub("", name) for name in names)]:
        price = prices.get(name)
        if price is not None:
            return price
    return None


def token_count(value: object) -> int:
    """A framework's token count as the layer stores it: a positive int, anything else 0
    (``None``, a bool, a negative or non-integer value that a provider sent)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def uri_database(uri: str) -> str | None:
    """The database named in ``uri``'s path (``None``: none); ``InvalidInputError`` if the URI
    is malformed (its password masked in the message)."""
    try:
        name = parse_uri(uri).get("database")
    except (ConfigurationError, InvalidURI, ValueError, TypeError) as exc:
        raise InvalidInputError("uri", str(exc).replace(uri, mask_uri(uri))) from exc
    return name if isinstance(name, str) and name else None
