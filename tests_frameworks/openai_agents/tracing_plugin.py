"""pytest plugin: the OpenAI Agents SDK's own runner and tracing tests, traced by agents-core.

Loaded with ``-p tests_frameworks.openai_agents.tracing_plugin`` into a pytest process started
from the SDK's source distribution (its root, its ``pyproject.toml``, its ``tests/conftest.py``);
see ``python -m tests_frameworks.openai_agents tracing``. It:

- starts a SecantusDB wire server for the run (or uses ``MONGODB_URI``) and makes one
  ``AgentsCoreTracingProcessor.from_uri`` on a fresh database;
- registers it next to the suite's own ``SPAN_PROCESSOR_TESTING`` before every test (the
  suite's ``conftest.py`` installs that one alone, once per session), with a small processor of
  ours that notes which traces ended;
- after every test: flushes our processor, reads the run of every trace the SDK's testing
  processor saw end, and checks them (``checker.compare``): a difference fails the test (an
  error at its teardown);
- deselects, by exact name, the tests that cannot pass with a second processor registered
  (each with its reason, printed), and fails the run if a deselected name is no longer found,
  if a suite compared no trace, or if our processor wrote nothing (a registration that
  silently missed).

Nothing here changes what a test asserts.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from agents.tracing import Span, Trace, TracingProcessor, get_trace_provider

from agents_core.db import Run, RunsRepository, connect
from agents_core.embedded import EmbeddedServer
from agents_core.integrations.openai_agents import AgentsCoreTracingProcessor
from tests_frameworks.openai_agents.checker import SOURCE, Comparison, compare

#: The suites run, as paths relative to the SDK's root.
SUITES = (
    "tests/test_agent_runner.py",
    "tests/test_agent_runner_streamed.py",
    "tests/test_agent_tracing.py",
    "tests/test_tracing_errors.py",
    "tests/test_tracing_errors_streamed.py",
    "tests/test_guardrails.py",
)

#: Tests not run, by ``path::function name``, and why.
DESELECTED: dict[str, str] = {}

_SERVER = pytest.StashKey[EmbeddedServer]()
_URI = pytest.StashKey[str]()
_DATABASE = pytest.StashKey[str]()
_PROCESSOR = pytest.StashKey[AgentsCoreTracingProcessor]()

#: What was compared, per suite.
_compared: dict[str, Comparison] = {}
#: Tests of each suite that ran (their call phase), and passed.
_ran: Counter[str] = Counter()
_passed: Counter[str] = Counter()
#: Traces the SDK's testing processor saw start that had not ended when their test finished.
_unfinished: Counter[str] = Counter()
_deselected_names: set[str] = set()


def _suite_of(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return path if path in SUITES else "(other)"


class _Ends(TracingProcessor):
    """A processor that notes the traces that ended (the SDK's testing processor does not)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ended: set[str] = set()

    def on_trace_start(self, trace: Trace) -> None:
        pass

    def on_trace_end(self, trace: Trace) -> None:
        with self._lock:
            self.ended.add(trace.trace_id)

    def on_span_start(self, span: Span[Any]) -> None:
        pass

    def on_span_end(self, span: Span[Any]) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


_ENDS = _Ends()


# ---------------------------------------------------------------------------------------------
# Server, database and processor


def pytest_configure(config: pytest.Config) -> None:
    uri = os.environ.get("MONGODB_URI")
    if uri is None:
        server = EmbeddedServer()  # private, in memory
        server.start()
        config.stash[_SERVER] = server
        uri = server.uri  # with retryWrites=false (NOTES-wire-server.md)
    config.stash[_URI] = uri
    name = f"sdk_tracing_{uuid.uuid4().hex[:12]}"
    config.stash[_DATABASE] = name
    config.stash[_PROCESSOR] = AgentsCoreTracingProcessor.from_uri(uri, database=name)


def pytest_unconfigure(config: pytest.Config) -> None:
    processor = config.stash.get(_PROCESSOR, None)
    if processor is not None:
        processor.shutdown(timeout=30)
        asyncio.run(_drop(config.stash[_URI], config.stash[_DATABASE]))
    server = config.stash.get(_SERVER, None)
    if server is not None:
        server.stop()


async def _drop(uri: str, name: str) -> None:
    connection = await connect(uri, database=name, create_indexes=False)
    try:
        await connection.client.drop_database(name)
    finally:
        await connection.close()


async def _read(uri: str, name: str, trace_ids: list[str]) -> dict[str, Run | None]:
    connection = await connect(uri, database=name, create_indexes=False)
    try:
        runs = RunsRepository(connection)
        return {
            trace_id: await runs.find_by_external_id(trace_id, source=SOURCE)
            for trace_id in trace_ids
        }
    finally:
        await connection.close()


@pytest.fixture(autouse=True)
def _traced_by_agents_core(request: pytest.FixtureRequest) -> Iterator[None]:
    """Our processor next to the suite's before the test; what it recorded checked after."""
    from tests.testing_processor import SPAN_PROCESSOR_TESTING  # the SDK's tests package

    config = request.config
    processor = config.stash[_PROCESSOR]
    get_trace_provider().set_processors([SPAN_PROCESSOR_TESTING, processor, _ENDS])
    yield
    traces = SPAN_PROCESSOR_TESTING.get_traces(including_empty=True)
    spans = SPAN_PROCESSOR_TESTING.get_ordered_spans(including_empty=True)
    suite = _suite_of(request.node.nodeid)
    ended = [trace for trace in traces if trace.trace_id in _ENDS.ended]
    _unfinished[suite] += len(traces) - len(ended)
    if not ended:
        return
    processor.force_flush()
    runs = asyncio.run(
        _read(config.stash[_URI], config.stash[_DATABASE], [trace.trace_id for trace in ended])
    )
    comparison = compare(ended, spans, runs)
    _compared.setdefault(suite, Comparison()).add(comparison)
    if comparison.problems:
        pytest.fail(
            "agents-core recorded these traces differently:\n" + "\n".join(comparison.problems)
        )


# ---------------------------------------------------------------------------------------------
# Deselection, counts and the proof


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, deselected = [], []
    for item in items:
        name = item.originalname if isinstance(item, pytest.Function) else item.name
        key = f"{item.nodeid.split('::', 1)[0]}::{name}"
        if key in DESELECTED:
            deselected.append(item)
            _deselected_names.add(key)
        else:
            kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    suite = _suite_of(report.nodeid)
    if report.when == "call":
        _ran[suite] += 1
        if report.passed:
            _passed[suite] += 1
    elif report.when == "teardown" and report.failed and _passed[suite]:
        _passed[suite] -= 1  # our check failed after the test itself passed


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    write = terminalreporter.write_line
    terminalreporter.section("agents-core: the SDK's runner and tracing tests, traced by us")
    total = Comparison()
    for suite in SUITES:
        compared = _compared.get(suite, Comparison())
        total.add(compared)
        write(
            f"{suite}: {_ran[suite]} tests ran, {_passed[suite]} passed; "
            f"{compared.traces} traces and {sum(compared.spans.values())} spans compared"
            + (f" ({_unfinished[suite]} traces never ended)" if _unfinished[suite] else "")
        )
    spans = ", ".join(f"{kind} {count}" for kind, count in sorted(total.spans.items()))
    write(
        f"total: {sum(_ran.values())} tests, {total.traces} traces, "
        f"{sum(total.spans.values())} spans ({spans})"
    )
    stats = config.stash[_PROCESSOR].stats()
    write(f"our processor: {stats} ; spans dropped: {config.stash[_PROCESSOR].dropped_spans}")
    write(f"deselected by name ({len(_deselected_names)}):")
    for name in sorted(_deselected_names):
        write(f"  {name}: {DESELECTED[name]}")
    for problem in _problems(config):
        write(f"FAILED: {problem}", red=True)


def _problems(config: pytest.Config) -> list[str]:
    problems = [
        f"{suite}: no trace compared (ran {_ran[suite]} tests): the registration missed"
        for suite in SUITES
        if _ran[suite] and not _compared.get(suite, Comparison()).traces
    ]
    if sum(_ran.values()) and config.stash[_PROCESSOR].stats().written == 0:
        problems.append("our processor wrote no run: it was never called")
    missing = sorted(set(DESELECTED) - _deselected_names)
    if missing:
        problems.append(f"deselected tests not found (renamed upstream?): {', '.join(missing)}")
    return problems


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.option.collectonly:
        return
    if _problems(session.config) and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
