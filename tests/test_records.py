"""Repositories return frozen records built by pydantic-core, never live Beanie documents."""

from __future__ import annotations

import pydantic
import pytest
from beanie import Document
from bson import ObjectId

from agents_core.db import (
    AgentsRepository,
    CorruptDocumentError,
    InvalidInputError,
    Message,
    MessageDocument,
    MessagesRepository,
    RunsRepository,
    SessionsRepository,
    ToolCallsRepository,
    get_database,
)
from tests.helpers import make_agent, make_run, make_session

pytestmark = pytest.mark.usefixtures("backend")


async def test_every_repository_returns_records_not_documents() -> None:
    agent = await make_agent(tools=["t"])
    session = await make_session()
    message = await MessagesRepository().create(session.id, "user", "hi")
    run = await RunsRepository().create(session.id, agent.id)
    call = await ToolCallsRepository().create(run.id, "t", "{}")
    returned = [
        agent,
        session,
        message,
        run,
        call,
        await AgentsRepository().find_by_id(agent.id),
        await SessionsRepository().find_by_id(session.id),
        await RunsRepository().find_by_id(run.id),
        *await ToolCallsRepository().find_by_run(run.id),
        *await MessagesRepository().find_by_session(session.id, 10),
    ]
    for record in returned:
        assert isinstance(record, pydantic.BaseModel)
        assert not isinstance(record, Document)
        assert not hasattr(record, "save")
    assert all(isinstance(r.id, ObjectId) for r in (agent, session, message, run))


async def test_records_are_immutable() -> None:
    session = await make_session()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        session.last_seq = 99  # type: ignore[misc]


async def test_a_read_record_equals_what_the_write_returned() -> None:
    run = await make_run()
    call = await ToolCallsRepository().create(run.id, "t", '{"a": 1}')
    assert (await ToolCallsRepository().find_by_run(run.id)) == [call]
    session = await make_session(user_id="u-1")
    message = await MessagesRepository().create(session.id, "user", "hi", idempotency_key="k")
    assert await MessagesRepository().get_last_message(session.id) == message
    assert (
        message.model_fields_set
        == Message.model_validate(message.model_dump(by_alias=True)).model_fields_set
    )


async def test_a_document_that_no_longer_validates_is_reported_as_corrupt() -> None:
    session = await make_session()
    await MessagesRepository().create(session.id, "user", "fine")
    bad_id = ObjectId()
    await get_database()["messages"].insert_one(
        {"_id": bad_id, "session_id": session.id, "seq": 2, "role": "robot", "content": "?"}
    )
    await get_database()["sessions"].update_one({"_id": session.id}, {"$set": {"last_seq": 2}})
    with pytest.raises(CorruptDocumentError) as info:
        await MessagesRepository().find_by_session(session.id, 10)
    assert info.value.collection == "messages"
    assert info.value.id == bad_id
    assert not isinstance(info.value, InvalidInputError)  # the caller did nothing wrong
    with pytest.raises(CorruptDocumentError, match="messages"):
        await MessagesRepository().get_last_message(session.id)
    # Read along with its session, it is still named as itself.
    with pytest.raises(CorruptDocumentError) as along:
        await SessionsRepository().find_by_id(session.id)
    assert (along.value.collection, along.value.id) == ("messages", bad_id)
    assert "role" in str(along.value)
    assert "messages.1" not in str(along.value)


async def test_a_corrupt_session_names_its_collection_and_id() -> None:
    session = await make_session()
    await get_database()["sessions"].update_one({"_id": session.id}, {"$set": {"status": 7}})
    with pytest.raises(CorruptDocumentError, match=f"{session.id} in sessions"):
        await SessionsRepository().find_by_id(session.id)


def test_beanie_documents_and_records_share_one_declaration() -> None:
    assert set(Message.model_fields) - {"id"} <= set(MessageDocument.model_fields)
    # Beanie's own fields, and the one field only the layer uses (escaped item keys).
    layer_only = {"id", "revision_id", "item_keys_escaped"}
    assert set(MessageDocument.model_fields) - layer_only == set(Message.model_fields) - {"id"}
