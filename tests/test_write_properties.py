"""Property tests of the write path, on both backends: arbitrary JSON-like items through
``MessagesRepository.append_items`` and ``AgentsCoreSession.add_items``.

Each batch either reads back exactly (same types, same values, same key order), or is refused
with ``InvalidInputError`` and leaves nothing: ``last_seq`` unchanged, no message, and for the
SDK session no session either. The items mix what breaks stores: lone surrogates (a model's
cut-off answer), names MongoDB mishandles (``$x``, ``a.b``, empty, NUL), deep nesting, integers
beyond 64 bits, and strings beyond a document's 16 MiB. A batch of plain items (none of those
traits) must be stored, so a layer that refused everything would fail too.

Deterministic (``derandomize``, no example database): a fresh clone runs the same examples.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents_core.db import InvalidInputError, MessagesRepository, SessionsRepository, get_database
from agents_core.integrations.openai_agents import AgentsCoreSession
from tests.helpers import make_session

pytestmark = pytest.mark.usefixtures("backend")

PROPERTIES = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one database per test; a session per example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

#: Lone surrogates, alone and inside text (valid JSON text decodes to these).
SURROGATES = st.sampled_from(["\ud83d", "cut emoji \ud83d", "\udc00 low", "a\udfffb"])
#: Field names MongoDB refuses or mishandles, and their escapes' look-alikes.
ODD_KEYS = st.sampled_from(
    ["$x", "a.b", "", "$", ".", "%", "%24", "%2E", "%25", "k\x00", "$ref", "a..b", "\ud800"]
)
TEXT = st.text(st.characters(exclude_categories=()), max_size=12)  # surrogates included
KEYS = st.one_of(TEXT, ODD_KEYS)
#: Integers at and beyond BSON's 64 bits, besides Hypothesis's own (unbounded) ones.
EDGE_INTS = st.sampled_from([2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64, 10**30])
#: Strings beyond (17 MiB) and well within (2 MiB) a document's 16 MiB.
HUGE = st.sampled_from([2, 17]).map(lambda mib: "h" * (mib * 1024 * 1024))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    EDGE_INTS,
    st.floats(allow_nan=False),  # NaN is stored, but is not equal to itself
    TEXT,
    SURROGATES,
    HUGE,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)


def nested(depth: int) -> Any:
    """A value ``depth`` containers deep, alternating objects and arrays."""
    value: Any = "bottom"
    for level in range(depth):
        value = {"d": value} if level % 2 else [value]
    return value


DEEP = st.integers(min_value=80, max_value=110).map(nested)
ITEM = st.dictionaries(KEYS, JSON | DEEP, max_size=5)
ITEMS = st.lists(ITEM, min_size=1, max_size=3)


def kind(value: Any) -> type:
    """The JSON type of ``value`` (a 64-bit integer reads back as ``bson.Int64``, an ``int``)."""
    return int if isinstance(value, int) and not isinstance(value, bool) else type(value)


def same(left: Any, right: Any) -> bool:
    """Equal, with the same JSON types all the way down and the same key order (``==`` alone
    takes ``True`` for ``1`` and ignores the order of keys)."""
    if kind(left) is not kind(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def plain(value: Any, depth: int = 0) -> bool:
    """Free of every trait that may be refused: such a value must be stored."""
    if isinstance(value, str):
        return len(value) < 1024 and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, float):
        return not math.isnan(value)
    if depth > 60:
        return False
    if isinstance(value, list):
        return all(plain(entry, depth + 1) for entry in value)
    return all(plain(key) and plain(entry, depth + 1) for key, entry in value.items())


async def stored_messages(**query: Any) -> int:
    found: int = await get_database()["messages"].count_documents(query)
    return found


@PROPERTIES
@given(items=ITEMS)
async def test_append_items_stores_exactly_or_refuses_and_writes_nothing(
    items: list[dict[str, Any]],
) -> None:
    repo = MessagesRepository()
    session = await make_session()
    try:
        appended = await repo.append_items(session.id, items)
    except InvalidInputError:
        assert not all(plain(item) for item in items), "a plain batch was refused"
        assert (await SessionsRepository().find_by_id(session.id)).last_seq == 0
        assert await stored_messages(session_id=session.id) == 0
        return
    assert same([m.item for m in appended], items)
    assert same(await repo.find_items(session.id), items)
    assert (await SessionsRepository().find_by_id(session.id)).last_seq == len(items)


@PROPERTIES
@given(items=ITEMS)
async def test_sdk_add_items_stores_exactly_or_refuses_and_writes_nothing(
    items: list[dict[str, Any]],
) -> None:
    sdk = AgentsCoreSession(f"property-{uuid.uuid4().hex}")
    batch: list[Any] = items  # the SDK's item types are TypedDicts: these are any JSON objects
    try:
        await sdk.add_items(batch)
    except InvalidInputError:
        assert not all(plain(item) for item in items), "a plain batch was refused"
        assert await sdk.core_session() is None  # not even the session was created
        return
    assert same(await sdk.get_items(), items)
    core = await sdk.core_session()
    assert core is not None
    assert core.last_seq == len(items)
    assert await stored_messages(session_id=core.id) == len(items)


@PROPERTIES
@given(values=st.dictionaries(TEXT, JSON | DEEP, max_size=3), metadata=ITEM)
async def test_langgraph_aput_stores_exactly_or_refuses_and_writes_nothing(
    values: dict[str, Any], metadata: dict[str, Any]
) -> None:
    """A checkpoint of arbitrary channel values (through LangGraph's serializer) and arbitrary
    metadata (stored as a document): read back equal, or ``InvalidInputError`` and no
    checkpoint, blob or chunk of the thread (issue 25)."""
    pytest.importorskip("langgraph.checkpoint.base", reason="the langgraph extra is not installed")
    from langgraph.checkpoint.base import empty_checkpoint

    from agents_core.integrations.langgraph import AgentsCoreSaver

    saver = AgentsCoreSaver(inline_max_bytes=1000)  # values beyond 1,000 bytes are blobs
    thread = f"property-{uuid.uuid4().hex}"
    config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    versions = {channel: saver.get_next_version(None, None) for channel in values}
    checkpoint["channel_values"] = dict(values)
    checkpoint["channel_versions"] = dict(versions)
    try:
        stored = await saver.aput(config, checkpoint, metadata, versions)  # type: ignore[arg-type]
    except InvalidInputError:
        assert not (plain(values) and plain(metadata)), "a plain checkpoint was refused"
        db = get_database()
        for name in ("lg_checkpoints", "payload_chunks"):
            assert await db[name].count_documents({"thread_id": thread}) == 0, name
        assert await saver.aget_tuple(config) is None
        return
    found = await saver.aget_tuple(stored)
    assert found is not None
    assert same(found.checkpoint["channel_values"], values)
    assert same({k: v for k, v in found.metadata.items() if k in metadata}, metadata)
