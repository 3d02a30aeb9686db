"""External ids, batch appends, exact items, pop and clear: the contract, on both backends."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from agents_core.db import (
    ExternalSessionDTO,
    InvalidInputError,
    InvalidStateError,
    MessageRole,
    MessagesRepository,
    NotFoundError,
    SessionsRepository,
    get_database,
)
from agents_core.db.documents import utcnow
from tests.helpers import make_session

pytestmark = pytest.mark.usefixtures("backend")

#: Items of every kind the SDK produces, with field names MongoDB refuses or mishandles.
ITEMS: list[dict[str, Any]] = [
    {"role": "user", "content": "What is 17 * 23?"},
    {"role": "developer", "content": "Be brief."},
    {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Let me compute.", "annotations": []}],
    },
    {
        "type": "function_call",
        "call_id": "call_1",
        "name": "calculator",
        "arguments": '{"a": 17, "b": 23}',
        "schema": {"$schema": "https://json-schema.org/draft/2020-12", "$ref": "#/$defs/x"},
    },
    {"type": "function_call_output", "call_id": "call_1", "output": "391"},
    {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "multiply"}],
        "encrypted_content": None,
    },
    {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "and this?"},
            {
                "type": "input_image",
                "image_url": "data:image/png;base64,iVBORw0K",
                "detail": "auto",
            },
        ],
    },
    {
        "type": "mcp_call",
        "id": "mcp_1",
        "server_label": "files",
        "name": "read",
        "arguments": "{}",
        "output": "ok",
        "meta": {"a.b": 1, "$set": {"x.y": [1, {"$in": "%24"}]}, "%": "%2E", "k\x00": 0},
    },
    {
        "type": "computer_call",
        "call_id": "cc_1",
        "action": {"type": "click", "x": 1, "y": 2},
        "pending_safety_checks": [],
    },
    {"type": "computer_call_output", "call_id": "cc_1", "output": {"type": "input_image"}},
    {"unicode": "こんにちは 😊", "big": 2**62, "neg": -1.5, "t": True, "n": None, "e": [], "d": {}},
]


async def test_external_ids_are_unique_per_namespace_and_user() -> None:
    repo = SessionsRepository()
    assert await repo.find_by_external_id("conv", namespace="sdk") is None
    first = await repo.get_or_create_by_external_id("conv", namespace="sdk", title="t")
    again = await repo.get_or_create_by_external_id("conv", namespace="sdk")
    assert again.id == first.id
    assert (first.external_id, first.external_namespace, first.title) == ("conv", "sdk", "t")
    found = await repo.find_by_external_id("conv", namespace="sdk")
    assert found is not None
    assert found.id == first.id
    other_namespace = await repo.get_or_create_by_external_id("conv", namespace="other")
    other_user = await repo.get_or_create_by_external_id("conv", namespace="sdk", user_id="u1")
    assert len({first.id, other_namespace.id, other_user.id}) == 3
    assert other_user.user_id == "u1"
    assert await repo.find_by_external_id("conv", namespace="sdk", user_id="u2") is None
    # Sessions without an external id are not in the unique index.
    await make_session("a")
    await make_session("b")


async def test_external_ids_found_or_created_as_a_batch() -> None:
    repo = SessionsRepository()
    existing = await repo.get_or_create_by_external_id("old", namespace="sdk", user_id="u1")
    keys = [
        ExternalSessionDTO(external_id="new-1", namespace="sdk", user_id="u1", title="one"),
        ExternalSessionDTO(external_id="old", namespace="sdk", user_id="u1", title="ignored"),
        ExternalSessionDTO(external_id="new-2", namespace="sdk", user_id="u2"),
        ExternalSessionDTO(external_id="new-1", namespace="sdk", user_id="u1"),  # again
        ExternalSessionDTO(external_id="new-1", namespace="other"),
    ]
    sessions = await repo.get_or_create_many_by_external_id(keys)
    assert [(s.external_id, s.external_namespace, s.user_id) for s in sessions] == [
        (key.external_id, key.namespace, key.user_id) for key in keys
    ]
    assert sessions[1] == existing
    assert sessions[0] == sessions[3]
    assert sessions[0].title == "one"
    assert len({session.id for session in sessions}) == 4
    assert await repo.get_or_create_many_by_external_id(keys) == sessions  # all found now
    for session in sessions:
        assert (
            await repo.find_by_external_id(
                str(session.external_id),
                namespace=str(session.external_namespace),
                user_id=session.user_id,
            )
            == session
        )
    assert await repo.get_or_create_many_by_external_id([]) == []


@pytest.mark.parametrize("bad", ["", "   ", None, {"$ne": None}, "a\nb"])
async def test_malformed_external_ids_are_refused(bad: object) -> None:
    with pytest.raises(InvalidInputError):
        await SessionsRepository().get_or_create_by_external_id(bad, namespace="sdk")  # type: ignore[arg-type]


async def test_items_come_back_exactly_with_views_fields() -> None:
    session = await make_session()
    repo = MessagesRepository()
    appended = await repo.append_items(session.id, ITEMS)
    assert [m.seq for m in appended] == list(range(1, len(ITEMS) + 1))
    assert [m.item for m in appended] == ITEMS
    assert await repo.find_items(session.id) == ITEMS
    assert await repo.find_items(str(session.id), limit=3) == ITEMS[-3:]
    assert await repo.find_items(session.id, limit=0) == []
    stored = await repo.find_by_session(session.id, 100)
    assert [m.item for m in stored] == ITEMS
    by_type = {m.item_type: m for m in stored}
    assert by_type["function_call"].role is MessageRole.assistant
    assert by_type["function_call"].call_id == "call_1"
    assert by_type["function_call"].content.startswith("calculator(")
    assert by_type["function_call_output"].role is MessageRole.tool
    assert by_type["function_call_output"].content == "391"
    assert stored[1].role is MessageRole.system  # developer
    assert stored[2].content == "Let me compute."
    assert stored[6].content == "and this? [input_image]"
    # Field names are escaped only where needed: the common ones stay queryable.
    raw = await get_database()["messages"].find_one({"session_id": session.id, "seq": 4})
    assert raw is not None
    assert raw["item"]["call_id"] == "call_1"
    assert "%24schema" in raw["item"]["schema"]
    found = await get_database()["messages"].count_documents({"item.call_id": "call_1"})
    assert found == 2


@pytest.mark.parametrize(
    "bad",
    [
        ["not a dict"],
        [{"t": (1, 2)}],
        [{"when": utcnow()}],
        [{1: "int key"}],
        [{"big": 2**64}],
        [{"ok": 1}, {"b": b"bytes"}],
        {"role": "user"},
        "text",
    ],
)
async def test_items_that_cannot_come_back_equal_are_refused_before_writing(bad: Any) -> None:
    session = await make_session()
    with pytest.raises(InvalidInputError):
        await MessagesRepository().append_items(session.id, bad)
    assert (await SessionsRepository().find_by_id(session.id)).last_seq == 0


async def test_append_items_to_a_missing_session_raises_not_found() -> None:
    with pytest.raises(NotFoundError):
        await MessagesRepository().append_items(ObjectId(), [{"role": "user", "content": "x"}])
    with pytest.raises(NotFoundError):
        await MessagesRepository().find_items(ObjectId())
    assert await MessagesRepository().append_items(ObjectId(), []) == []


def _message(session_id: ObjectId, seq: int, end: int | None, text: str) -> dict[str, Any]:
    return {
        "_id": ObjectId(),
        "session_id": session_id,
        "seq": seq,
        "role": "user",
        "content": text,
        "created_at": utcnow(),
        "item": {"role": "user", "content": text},
        "batch_end_seq": end,
    }


async def test_a_batch_is_not_shown_until_its_last_message_exists() -> None:
    session = await make_session()
    repo = MessagesRepository()
    await repo.append_items(session.id, [{"role": "user", "content": "a"}])
    # A batch of seq 2-4 whose writer stopped after two messages (reserved, partly inserted).
    db = get_database()
    await db["sessions"].update_one({"_id": session.id}, {"$inc": {"last_seq": 3}})
    await db["messages"].insert_many(
        [_message(session.id, 2, 4, "b1"), _message(session.id, 3, 4, "b2")]
    )
    await repo.append_items(session.id, [{"role": "user", "content": "c"}])
    assert await repo.find_items(session.id) == [
        {"role": "user", "content": "a"},
        {"role": "user", "content": "c"},
    ]
    assert [m.content for m in await repo.find_by_session(session.id, 2)] == ["a", "c"]
    assert [m.content for m in (await SessionsRepository().find_by_id(session.id)).messages] == [
        "a",
        "c",
    ]
    last = await repo.pop_last(session.id)
    assert last is not None
    assert last.content == "c"
    assert (await repo.pop_last(session.id)).content == "a"  # type: ignore[union-attr]
    assert await repo.pop_last(session.id) is None
    # Its last message lands: the whole batch shows at once.
    await db["messages"].insert_one(_message(session.id, 4, 4, "b3"))
    assert [i["content"] for i in await repo.find_items(session.id)] == ["b1", "b2", "b3"]


async def test_find_page_shows_what_every_reader_shows() -> None:
    session = await make_session()
    repo = MessagesRepository()
    await repo.append_items(session.id, [{"role": "user", "content": c} for c in "ab"])
    await repo.clear(session.id)
    await repo.append_items(session.id, [{"role": "user", "content": c} for c in "cde"])
    # A batch of seq 6-8 whose writer stopped after two messages, then a later append.
    db = get_database()
    await db["sessions"].update_one({"_id": session.id}, {"$inc": {"last_seq": 3}})
    await db["messages"].insert_many(
        [_message(session.id, 6, 8, "x1"), _message(session.id, 7, 8, "x2")]
    )
    await repo.append_items(session.id, [{"role": "user", "content": "f"}])
    await repo.pop_last(session.id)
    await repo.append_items(session.id, [{"role": "user", "content": "g"}])
    contents = ["c", "d", "e", "g"]
    assert [m.content for m in await repo.find_page(session.id)] == contents
    assert [m.content for m in await repo.find_page(session.id, after=0, limit=2)] == ["c", "d"]
    assert [m.content for m in await repo.find_page(session.id, before=10, limit=2)] == ["d", "e"]
    assert [m.content for m in await repo.find_page(session.id, after=5, limit=2)] == ["g"]


async def test_external_ids_stay_with_their_session_through_fork_and_delete() -> None:
    sessions, messages = SessionsRepository(), MessagesRepository()
    first = await sessions.get_or_create_by_external_id("conv", namespace="sdk")
    await messages.append_items(first.id, [{"role": "user", "content": "hi"}])
    fork = await sessions.fork(first.id)
    assert (fork.external_id, fork.external_namespace) == (None, None)
    assert [m.content for m in await messages.find_by_session(fork.id, 10)] == ["hi"]
    assert await sessions.delete(first.id)
    assert await sessions.find_by_external_id("conv", namespace="sdk") is None
    with pytest.raises(NotFoundError):
        await messages.append_items(first.id, [{"role": "user", "content": "late"}])
    again = await sessions.get_or_create_by_external_id("conv", namespace="sdk")
    assert again.id != first.id
    assert await messages.find_items(again.id) == []


async def test_a_session_being_deleted_hides_its_external_id() -> None:
    sessions, messages = SessionsRepository(), MessagesRepository()
    first = await sessions.get_or_create_by_external_id("conv", namespace="sdk")
    # A deletion that marked the session, then stopped (the next delete finishes it).
    await get_database()["sessions"].update_one({"_id": first.id}, {"$set": {"status": "deleting"}})
    assert await sessions.find_by_external_id("conv", namespace="sdk") is None
    with pytest.raises(NotFoundError):
        await messages.append_items(first.id, [{"role": "user", "content": "late"}])
    with pytest.raises(NotFoundError):
        await messages.find_items(first.id)
    with pytest.raises(InvalidStateError):
        await sessions.get_or_create_by_external_id("conv", namespace="sdk")
    assert await sessions.delete(first.id)
    assert (await sessions.get_or_create_by_external_id("conv", namespace="sdk")).id != first.id


async def test_pop_last_takes_the_newest_and_keeps_the_rest_of_its_batch() -> None:
    session = await make_session()
    repo = MessagesRepository()
    assert await repo.pop_last(session.id) is None
    await repo.append_items(session.id, ITEMS[:3])
    await repo.append_items(session.id, ITEMS[3:6])
    popped = await repo.pop_last(session.id)
    assert popped is not None
    assert (popped.seq, popped.item, popped.popped_at is not None) == (6, ITEMS[5], True)
    assert await repo.find_items(session.id) == ITEMS[:5]
    assert await repo.find_items(session.id, limit=2) == ITEMS[3:5]
    assert (await repo.get_last_message(session.id)).item == ITEMS[4]  # type: ignore[union-attr]
    await repo.append_items(session.id, [ITEMS[6]])
    assert await repo.find_items(session.id, limit=2) == [ITEMS[4], ITEMS[6]]
    assert [m.seq for m in await repo.find_by_session(session.id, 10)] == [1, 2, 3, 4, 5, 7]
    for expected in (ITEMS[6], *reversed(ITEMS[:5])):
        got = await repo.pop_last(session.id)
        assert got is not None
        assert got.item == expected
    assert await repo.pop_last(session.id) is None
    with pytest.raises(NotFoundError):
        await repo.pop_last(ObjectId())


async def test_clear_empties_every_reader_and_later_appends_continue_above_it() -> None:
    session = await make_session()
    repo = MessagesRepository()
    await repo.append_items(session.id, ITEMS[:4])
    await repo.create(session.id, "user", "plain")
    assert await repo.clear(session.id) == 5
    assert await repo.find_items(session.id) == []
    assert await repo.find_by_session(session.id, 10) == []
    assert await repo.get_last_message(session.id) is None
    assert await repo.pop_last(session.id) is None
    found = await SessionsRepository().find_by_id(session.id)
    assert (found.messages, found.cleared_through_seq, found.last_seq) == ([], 5, 5)
    assert await get_database()["messages"].count_documents({"session_id": session.id}) == 0
    appended = await repo.append_items(session.id, ITEMS[4:6])
    assert [m.seq for m in appended] == [6, 7]  # no seq reused
    assert await repo.find_items(session.id) == ITEMS[4:6]
    assert await repo.clear(session.id) == 7
    assert await repo.clear(session.id) == 7  # idempotent


async def test_a_cleared_history_stays_empty_when_its_clean_up_was_interrupted() -> None:
    session = await make_session()
    repo = MessagesRepository()
    await repo.append_items(session.id, ITEMS[:3])
    # The floor was raised, then the process died before deleting anything.
    await get_database()["sessions"].update_one(
        {"_id": session.id}, {"$set": {"cleared_through_seq": 3}}
    )
    assert await repo.find_items(session.id) == []
    assert await repo.find_by_session(session.id, 10) == []
    assert await repo.pop_last(session.id) is None
    await repo.append_items(session.id, [ITEMS[3]])
    assert await repo.find_items(session.id) == [ITEMS[3]]
    await repo.clear(session.id)  # the next clear removes the leftovers
    assert await get_database()["messages"].count_documents({"session_id": session.id}) == 0


async def test_find_items_reads_plain_messages_as_role_and_content() -> None:
    session = await make_session()
    await MessagesRepository().create(session.id, "assistant", "hello")
    assert await MessagesRepository().find_items(session.id) == [
        {"role": "assistant", "content": "hello"}
    ]


async def test_reads_skip_long_runs_of_hidden_messages() -> None:
    """Many popped messages above the visible ones: the read widens its range, no sort."""
    session = await make_session()
    repo = MessagesRepository()
    await repo.append_items(session.id, [{"n": i} for i in range(40)])
    for _ in range(30):
        await repo.pop_last(session.id)
    assert await repo.find_items(session.id, limit=5) == [{"n": i} for i in range(5, 10)]
    assert await repo.find_items(session.id) == [{"n": i} for i in range(10)]
