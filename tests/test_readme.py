"""The README's Python examples run as written (on the in-memory database)."""

from __future__ import annotations

from typing import Any

import pytest

import agents_core.db
from agents_core.db import get_database
from agents_core.testing import in_memory_client
from tests.readme_examples import README, as_module, python_blocks


def block(containing: str) -> str:
    """The README's one ```python block that contains ``containing``."""
    (found,) = [text for text in python_blocks() if containing in text]
    return found


async def run_blocks(blocks: list[str]) -> dict[str, Any]:
    source = as_module(blocks, returns_locals=True)
    namespace: dict[str, Any] = {}
    exec(compile(source, str(README), "exec"), namespace)
    result: dict[str, Any] = await namespace["_example"]()
    return result


async def test_the_usage_and_runner_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    original = agents_core.db.init_db

    async def init_in_memory(*args: Any, **kwargs: Any) -> None:
        await original(client=in_memory_client(), database="readme")

    monkeypatch.setattr(agents_core.db, "init_db", init_in_memory)
    usage, runner = block("ToolCallsRepository().create("), block("AgentRunner(model, tools)")
    # The runner example goes on from the usage example's session, before it closes the layer.
    before_close, close = usage.rsplit("await close_db()", 1)
    names = await run_blocks([before_close, runner, "await close_db()" + close])
    assert names["history"].messages[-1].content == "Where is my refund?"
    assert names["run"].status == "completed"
    assert [c.tool_name for c in names["run"].tool_calls] == ["search_orders"]


async def test_the_testing_example_runs() -> None:
    names = await run_blocks([block("in_memory_db()")])
    await names["test_my_service"]()
    with pytest.raises(agents_core.db.NotInitializedError):
        get_database()


async def test_the_lifecycle_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    original = agents_core.db.init_db

    async def init_in_memory(*args: Any, **kwargs: Any) -> None:
        await original(client=in_memory_client(), database="readme")

    monkeypatch.setattr(agents_core.db, "init_db", init_in_memory)
    usage, lifecycle = block("ToolCallsRepository().create("), block("find_page(")
    before_close, close = usage.rsplit("await close_db()", 1)
    names = await run_blocks([before_close, lifecycle, "await close_db()" + close])
    assert [m.content for m in names["page"]] == ["Where is my refund?"]
    assert (names["older"], names["newer"]) == ([], [])
    assert [s.title for s in names["listing"].items] == ["Refund question"]
    assert names["what_if"].forked_at_seq == 1
    assert names["removed"].removed == 0


async def test_the_scores_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    original = agents_core.db.init_db

    async def init_in_memory(*args: Any, **kwargs: Any) -> None:
        await original(client=in_memory_client(), database="readme")

    monkeypatch.setattr(agents_core.db, "init_db", init_in_memory)
    usage, scores = block("ToolCallsRepository().create("), block("add_score(")
    before_close, close = usage.rsplit("await close_db()", 1)
    # The same add twice, as a retry would send it: one verdict is stored.
    names = await run_blocks([before_close, scores, scores, "await close_db()" + close])
    assert [(s.name, s.value, s.label, s.by) for s in names["scores"]] == [
        ("thumbs", 1.0, None, "u-42"),
        ("faithfulness", None, "pass", "judge-v2"),
        ("thumbs", 1.0, None, "u-42"),
    ]
    assert names["verdict"] == names["scores"][1]


async def test_the_openai_agents_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from agents import set_tracing_disabled

    original = agents_core.db.init_db

    async def init_in_memory(*args: Any, **kwargs: Any) -> None:
        await original(client=in_memory_client(), database="readme")

    monkeypatch.setattr(agents_core.db, "init_db", init_in_memory)
    set_tracing_disabled(True)
    try:
        names = await run_blocks([block("AgentsCoreSession(")])
    finally:
        set_tracing_disabled(False)
        await agents_core.db.close_db()
    assert names["result"].final_output == "It was sent Monday."
    assert [item.get("role") for item in names["items"]] == ["user", "assistant"]
