"""Repositories return frozen records built by pydantic-core, never live Beanie documents."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

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
    Price,
    RunsRepository,
    SessionsRepository,
    ToolCallsRepository,
    get_database,
)
from agents_core.db.documents import json_default, utcnow
from tests.helpers import Clock, make_agent, make_run, make_session

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


async def test_every_datetime_a_record_returns_is_in_utc_and_equals_the_stored_one() -> None:
    # The repositories read datetimes naive and the records make them aware (``UtcDatetime``);
    # the database handle users get reads them aware, the same instants.
    run = await make_run()
    call = await ToolCallsRepository().create(run.id, "t", "{}")
    await ToolCallsRepository().complete(call.id, "ok", "success", 1.0)
    await MessagesRepository().create(run.session_id, "user", "hi")
    session = await SessionsRepository().find_by_id(run.session_id)
    (read_call,) = await ToolCallsRepository().find_by_run(run.id)
    read_run = await RunsRepository().find_by_id(run.id)
    stamps = [
        session.created_at,
        session.updated_at,
        session.messages[0].created_at,
        read_call.started_at,
        read_call.completed_at,
        read_run.started_at,
    ]
    assert all(stamp is not None and stamp.tzinfo is UTC for stamp in stamps)
    stored = await get_database()["sessions"].find_one({"_id": session.id})
    assert stored is not None
    assert stored["updated_at"].tzinfo is not None
    assert stored["updated_at"] == session.updated_at


def test_a_record_takes_a_naive_datetime_as_utc_and_converts_other_zones() -> None:
    fields = {"_id": ObjectId(), "session_id": ObjectId(), "seq": 1, "role": "user", "content": ""}
    naive = datetime(2026, 1, 2, 3, 4, 5)
    plus_two = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    for value in (naive, plus_two):
        created = Message.model_validate({**fields, "created_at": value}).created_at
        assert created == naive.replace(tzinfo=UTC)
        assert created.tzinfo is UTC
    as_json = Message.model_validate({**fields, "created_at": naive}).model_dump_json()
    with pytest.raises(pydantic.ValidationError, match="timezone"):
        Message.model_validate_json(as_json.replace("Z", "").replace("+00:00", ""))


def test_json_default_encodes_records_datetimes_and_ids_and_nothing_else() -> None:
    sid = ObjectId()
    at = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    message = Message.model_validate(
        {"_id": ObjectId(), "session_id": sid, "seq": 1, "role": "user", "content": "é"}
        | {"created_at": at}
    )
    encoded = json.loads(json.dumps({"m": [message], "at": at, "id": sid}, default=json_default))
    assert encoded == {"m": [message.model_dump(mode="json")], "at": at.isoformat(), "id": str(sid)}
    assert encoded["m"][0]["session_id"] == str(sid)
    with pytest.raises(TypeError, match="cannot encode set as JSON"):
        json.dumps({"x": {1}}, default=json_default)


def test_utcnow_is_now_in_utc_in_whole_milliseconds(clock: Clock) -> None:
    clock.now = datetime(2026, 1, 2, 3, 4, 5, 123999, tzinfo=UTC)  # what the system clock says
    now = utcnow()
    assert now == datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    assert now.tzinfo is UTC


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


@pytest.mark.parametrize("rate", [float("inf"), float("nan"), -0.5])
@pytest.mark.parametrize(
    "field", ["input_per_million", "output_per_million", "cached_input_per_million"]
)
def test_a_price_refuses_a_rate_that_is_not_a_finite_number_from_0(field: str, rate: float) -> None:
    # An infinite rate priced every call at inf, and the run's and the day's totals with it.
    rates = {"input_per_million": 1.0, "output_per_million": 2.0, field: rate}
    with pytest.raises(pydantic.ValidationError, match=field):
        Price(**rates)
