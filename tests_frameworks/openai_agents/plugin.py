"""pytest plugin: the OpenAI Agents SDK's own session tests, run against ``AgentsCoreSession``.

Loaded with ``-p tests_frameworks.openai_agents.plugin`` into a pytest process started from the
SDK's source distribution (its root, its ``pyproject.toml``, its ``tests/conftest.py``); see
``python -m tests_frameworks.openai_agents``. It:

- starts a SecantusDB wire server for the run (or uses ``MONGODB_URI``), and gives every test
  a fresh database through the layer's connection (``init_db`` with a URI, on the test's loop);
- swaps the SDK's in-test sessions for ours, by object: ``tests.utils.simple_session.
  SimpleListSession`` before any test module imports it (so the tests' subclasses of it are
  subclasses of ours), and every module global that *is* ``agents.SQLiteSession`` in the
  collected test modules (``tests/memory`` has no ``__init__.py``, so those modules are not
  importable by a dotted name: the module objects pytest collected are patched);
- deselects, by exact name, the tests of SQLite internals (each with its reason, printed);
- fails the run if one of the four suites ran no test or constructed none of our sessions.

Nothing here changes what a test asserts.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from agents_core.db import close_db, init_db
from agents_core.db.client import default_connection
from agents_core.embedded import EmbeddedServer
from agents_core.integrations.openai_agents import AgentsCoreSession

#: The suites run, as paths relative to the SDK's root (a folder ends with "/").
SUITES = (
    "tests/memory/test_session.py",
    "tests/memory/test_session_limit.py",
    "tests/deferred_session_writes/",
    "tests/test_hitl_session_scenario.py",
)

_SQLITE = "reads or drives SQLiteSession internals"
#: Tests of ``tests/memory/test_session.py`` not run, by function name, and why.
DESELECTED = {
    "test_sqlite_session_close_closes_worker_thread_connections": (
        f"{_SQLITE}: the per-thread sqlite3 connections in SQLiteSession._connections"
    ),
    "test_sqlite_session_reaps_connections_from_exited_worker_threads": (
        f"{_SQLITE}: reaping sqlite3 connections of exited worker threads (_connections)"
    ),
    "test_sqlite_session_closes_retired_connections_before_the_next_allocation": (
        f"{_SQLITE}: monkeypatches sqlite3.connect and counts open sqlite3 connections"
    ),
    "test_sqlite_session_keeps_connections_of_live_worker_threads": (
        f"{_SQLITE}: sqlite3 connections held by live worker threads (_connections)"
    ),
    "test_sqlite_session_closed_rejects_empty_add_items": (
        "expects RuntimeError('SQLiteSession is closed') after the synchronous SQLite close(); "
        "our sessions on the layer's connection own nothing to close (a closed from_uri "
        "session refuses calls, tested in our suite)"
    ),
    "test_sqlite_session_pop_item_skips_corrupt_most_recent": (
        f"{_SQLITE}: inserts a corrupt JSON row with raw SQL (_locked_connection); items are "
        "BSON documents here, never unparsable strings"
    ),
    "test_sqlite_session_pop_item_returns_none_after_dropping_only_corrupt_rows": (
        f"{_SQLITE}: inserts corrupt JSON rows with raw SQL (_locked_connection)"
    ),
    "test_sqlite_session_get_items_limit_skips_corrupt_newest_rows": (
        f"{_SQLITE}: inserts corrupt JSON rows with raw SQL (_locked_connection)"
    ),
    "test_sqlite_session_get_items_session_settings_limit_skips_corrupt_rows": (
        f"{_SQLITE}: inserts corrupt JSON rows with raw SQL (_locked_connection)"
    ),
    "test_sqlite_session_file_lock_is_shared_across_instances": (
        f"{_SQLITE}: the process-wide file locks SQLiteSession._lock / _file_lock_counts"
    ),
    "test_sqlite_session_failed_add_items_releases_write_lock": (
        f"{_SQLITE}: expects json.dumps's TypeError, then probes the SQLite write lock with "
        "sqlite3 (ours refuses a non-JSON item with InvalidInputError before writing)"
    ),
    "test_sqlite_session_failed_clear_session_rolls_back": (
        f"{_SQLITE}: drops a SQLite table, expects sqlite3.OperationalError and checks "
        "conn.in_transaction"
    ),
    "test_sqlite_session_failed_pop_item_releases_write_lock": (
        f"{_SQLITE}: drops a SQLite table, expects sqlite3.OperationalError, probes the lock"
    ),
    "test_sqlite_session_rollback_failure_evicts_connection": (
        f"{_SQLITE}: injects a sqlite3.Connection subclass whose rollback fails"
    ),
    "test_sqlite_session_close_retries_quarantined_connection": (
        f"{_SQLITE}: injects a sqlite3.Connection whose close fails (_quarantined_connections)"
    ),
    "test_sqlite_session_post_commit_cancellation_propagates_after_known_outcome": (
        f"{_SQLITE}: injects a sqlite3.Connection that pauses inside commit() (3 parametrized "
        "cases: add, pop, clear)"
    ),
}
_DESELECT_IN = "tests/memory/test_session.py"

#: Our sessions constructed while the tests of each suite ran.
_constructed: Counter[str] = Counter()
#: Tests of each suite that ran (their call phase).
_ran: Counter[str] = Counter()
_current_suite: str | None = None
_deselected_names: set[str] = set()


def _suite_of(nodeid: str) -> str | None:
    path = nodeid.split("::", 1)[0]
    for suite in SUITES:
        if path == suite or (suite.endswith("/") and path.startswith(suite)):
            return suite
    return None


def _constructed_one() -> None:
    _constructed[_current_suite or "(outside a test)"] += 1


class SimpleListSession(AgentsCoreSession):
    """The SDK tests' in-memory ``SimpleListSession``, stored in agents-core.

    Each instance is a new list there, so each gets a conversation of its own (its own user
    scope); ``history`` is appended as one batch before the instance's first call (a
    constructor cannot await).
    """

    def __init__(self, session_id: str = "test", history: list[Any] | None = None) -> None:
        super().__init__(session_id, user_id=f"simple-list-{uuid.uuid4().hex}")
        self._history = list(history) if history else []
        self._ignore_ids_for_matching = False
        _constructed_one()

    async def _seed(self) -> None:
        history, self._history = self._history, []
        if history:
            await AgentsCoreSession.add_items(self, history)

    async def get_items(self, limit: int | None = None, *, wrapper: Any = None) -> Any:
        await self._seed()
        return await super().get_items(limit, wrapper=wrapper)

    async def add_items(self, items: Any, *, wrapper: Any = None) -> None:
        await self._seed()
        await super().add_items(items, wrapper=wrapper)

    async def pop_item(self, *, wrapper: Any = None) -> Any:
        await self._seed()
        return await super().pop_item(wrapper=wrapper)

    async def clear_session(self, *, wrapper: Any = None) -> None:
        self._history = []
        await super().clear_session(wrapper=wrapper)


class SQLiteSession(AgentsCoreSession):
    """``SQLiteSession(session_id, db_path=":memory:", ...)``, stored in agents-core.

    A database file is a scope: sessions of one ``db_path`` share their conversations, and
    each ``:memory:`` instance is a database of its own, as with SQLite.
    """

    def __init__(
        self,
        session_id: str,
        db_path: str | Path = ":memory:",
        sessions_table: str = "agent_sessions",
        messages_table: str = "agent_messages",
        session_settings: Any = None,
    ) -> None:
        if str(db_path) == ":memory:":
            scope = f"sqlite-memory-{uuid.uuid4().hex}"
        else:
            scope = f"sqlite-{uuid.uuid5(uuid.NAMESPACE_URL, str(Path(db_path).resolve())).hex}"
        super().__init__(session_id, user_id=scope, session_settings=session_settings)
        self.db_path = db_path
        self.sessions_table = sessions_table
        self.messages_table = messages_table
        _constructed_one()

    def close(self) -> None:  # type: ignore[override]
        """``SQLiteSession.close`` is synchronous and releases its sqlite3 connections; this
        session runs on the layer's connection, which the plugin owns: nothing to release."""


# ---------------------------------------------------------------------------------------------
# Server and connection


def pytest_configure(config: pytest.Config) -> None:
    uri = os.environ.get("MONGODB_URI")
    if uri is None:
        server = EmbeddedServer()  # private, in memory
        server.start()
        config.stash[_SERVER] = server
        uri = server.uri  # with retryWrites=false (NOTES-wire-server.md)
    config.stash[_URI] = uri


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(_SERVER, None)
    if server is not None:
        server.stop()


_SERVER = pytest.StashKey[EmbeddedServer]()
_URI = pytest.StashKey[str]()


@pytest_asyncio.fixture(loop_scope="function", autouse=True)
async def _agents_core_database(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """The layer on a fresh database for each test, connected by URI on the test's loop."""
    name = f"sdk_{uuid.uuid4().hex[:12]}"
    await init_db(request.config.stash[_URI], database=name)
    try:
        yield
    finally:
        await default_connection().client.drop_database(name)
        await close_db()


# ---------------------------------------------------------------------------------------------
# The swap, the deselection and the proof


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    import tests.utils.simple_session as simple_session

    simple_session.SimpleListSession = SimpleListSession  # type: ignore[misc]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from agents.memory.sqlite_session import SQLiteSession as SdkSQLiteSession

    modules = {id(item.module): item.module for item in items if isinstance(item, pytest.Function)}
    for module in modules.values():
        for name, value in list(vars(module).items()):
            if value is SdkSQLiteSession:
                setattr(module, name, SQLiteSession)

    kept, deselected = [], []
    for item in items:
        name = item.originalname if isinstance(item, pytest.Function) else item.name
        if item.nodeid.startswith(_DESELECT_IN) and name in DESELECTED:
            deselected.append(item)
            _deselected_names.add(name)
        else:
            kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    global _current_suite
    _current_suite = _suite_of(item.nodeid) or "(other)"
    try:
        return (yield)
    finally:
        _current_suite = None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _ran[_suite_of(report.nodeid) or "(other)"] += 1


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    write = terminalreporter.write_line
    terminalreporter.section("agents-core: the SDK's session tests on AgentsCoreSession")
    for suite in SUITES:
        write(f"{suite}: {_ran[suite]} tests ran, {_constructed[suite]} of our sessions made")
    write(f"deselected by name ({len(_deselected_names)} tests of SQLite internals):")
    for name in sorted(_deselected_names):
        write(f"  {name}: {DESELECTED[name]}")
    for problem in _problems():
        terminalreporter.write_line(f"FAILED: {problem}", red=True)


def _problems() -> list[str]:
    problems = [
        f"{suite} constructed none of our sessions (ran {_ran[suite]} tests): the swap missed"
        for suite in SUITES
        if _constructed[suite] == 0
    ]
    missing = sorted(set(DESELECTED) - _deselected_names)
    if missing:
        problems.append(f"deselected tests not found (renamed upstream?): {', '.join(missing)}")
    return problems


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.option.collectonly:
        return
    if _problems() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
