"""LangGraph's conformance suite (``langgraph-checkpoint-conformance``) on ``AgentsCoreSaver``.

The suite runs its own tests and reports per capability; this glue registers our saver, runs
it on a fresh database of the wire server (and, separately, of the in-memory mock), prints the
suite's own report and requires every base and extended test to pass. It also proves that the
suite exercised our saver: every saver it got is an ``AgentsCoreSaver``, all eight capabilities
were detected on it, the number of tests that ran is the number the suite defines, and the
saver's collections hold what the tests wrote.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    BASE_CAPABILITIES,
    EXTENDED_CAPABILITIES,
    Capability,
)
from langgraph.checkpoint.conformance.report import CapabilityReport, ProgressCallbacks
from langgraph.checkpoint.conformance.spec import (
    test_copy_thread,
    test_delete_for_runs,
    test_delete_thread,
    test_get_tuple,
    test_list,
    test_prune,
    test_put,
    test_put_writes,
)
from pymongo import AsyncMongoClient

from agents_core.integrations.langgraph import AgentsCoreSaver
from agents_core.testing import in_memory_client

#: How many tests the suite defines per capability (58 base and 23 extended in 0.0.2).
DEFINED = {
    Capability.PUT: len(test_put.ALL_PUT_TESTS),
    Capability.PUT_WRITES: len(test_put_writes.ALL_PUT_WRITES_TESTS),
    Capability.GET_TUPLE: len(test_get_tuple.ALL_GET_TUPLE_TESTS),
    Capability.LIST: len(test_list.ALL_LIST_TESTS),
    Capability.DELETE_THREAD: len(test_delete_thread.ALL_DELETE_THREAD_TESTS),
    Capability.DELETE_FOR_RUNS: len(test_delete_for_runs.ALL_DELETE_FOR_RUNS_TESTS),
    Capability.COPY_THREAD: len(test_copy_thread.ALL_COPY_THREAD_TESTS),
    Capability.PRUNE: len(test_prune.ALL_PRUNE_TESTS),
}


async def run_suite(database: Any) -> tuple[CapabilityReport, list[AgentsCoreSaver]]:
    """The suite's report on savers of ``database``, and the savers it was given."""
    savers: list[AgentsCoreSaver] = []

    @checkpointer_test(name="AgentsCoreSaver")
    async def factory() -> AsyncIterator[AgentsCoreSaver]:
        saver = AgentsCoreSaver(database)
        savers.append(saver)
        yield saver

    report = await validate(factory, progress=ProgressCallbacks.default())
    report.print_report()
    passed = {
        group: sum(report.results[cap.value].tests_passed for cap in caps)
        for group, caps in (("base", BASE_CAPABILITIES), ("extended", EXTENDED_CAPABILITIES))
    }
    print(f"  base: {passed['base']} passed, extended: {passed['extended']} passed")
    return report, savers


def check(report: CapabilityReport, savers: list[AgentsCoreSaver]) -> None:
    assert savers, "the suite never created our saver"
    assert all(type(saver) is AgentsCoreSaver for saver in savers)
    for cap, defined in DEFINED.items():
        result = report.results[cap.value]
        assert result.detected, f"{cap.value}: not detected on AgentsCoreSaver"
        assert result.tests_passed + result.tests_failed == defined, cap.value
        assert result.failures == [], f"{cap.value}: {result.failures}"
        assert result.tests_passed == defined, cap.value
    assert report.conformance_level() == "FULL"


async def check_collections(database: Any) -> None:
    """What the suite wrote went through our collection of this database."""
    for kind in ("head", "checkpoint", "blob", "write"):
        assert await database["lg_checkpoints"].count_documents({"kind": kind}) > 0, kind


async def test_conformance_wire(wire_uri: str) -> None:
    client: AsyncMongoClient[Any] = AsyncMongoClient(wire_uri, serverSelectionTimeoutMS=10_000)
    name = f"lg_conformance_{uuid.uuid4().hex[:12]}"
    try:
        report, savers = await run_suite(client[name])
        check(report, savers)
        await check_collections(client[name])
    finally:
        await client.drop_database(name)
        await client.close()


async def test_conformance_mock() -> None:
    """The in-memory database of ``agents_core.testing`` (pymongo-async-mock over mongomock-ng)."""
    database = in_memory_client()[f"lg_conformance_{uuid.uuid4().hex[:12]}"]
    report, savers = await run_suite(database)
    check(report, savers)
    await check_collections(database)
