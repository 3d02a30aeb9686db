"""The fast decoder of stored documents agrees with pydantic's full validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest
from bson import ObjectId

from agents_core.db import Agent, Message, MessageRole, Run, RunStatus, Session, ToolCall
from agents_core.db.repositories._decode import decode
from agents_core.testing import in_memory_db

NOW = datetime(2026, 11, 27, 8, 0, 0, 123000, tzinfo=UTC)
RUN = ObjectId()
CALL = {
    "id": f"{RUN}-{ObjectId()}",
    "run_id": RUN,
    "tool_name": "t",
    "input": "{}",
    "output": None,
    "status": "pending",
    "started_at": NOW,
    "completed_at": None,
    "duration_ms": None,
    "input_payload": {"id": ObjectId(), "size": 10, "sha256": "ab"},
    "output_payload": None,
}
DOCUMENTS: list[tuple[type[pydantic.BaseModel], dict[str, Any]]] = [
    (
        Agent,
        {
            "_id": ObjectId(),
            "name": "a",
            "instructions": "",
            "model": None,
            "tools": ["x"],
            "created_at": NOW,
            "updated_at": NOW,
        },
    ),
    (
        Session,
        {
            "_id": ObjectId(),
            "title": None,
            "user_id": "u",
            "status": "active",
            "active_agent_id": ObjectId(),
            "last_seq": 3,
            "created_at": NOW,
            "updated_at": NOW,
        },
    ),
    (
        Message,
        {
            "_id": ObjectId(),
            "session_id": ObjectId(),
            "seq": 1,
            "role": "tool",
            "content": "c",
            "created_at": NOW,
            "tool_call_id": CALL["id"],
        },
    ),
    (
        Run,
        {
            "_id": RUN,
            "session_id": ObjectId(),
            "agent_id": ObjectId(),
            "status": "running",
            "error": None,
            "tokens": 5,
            "cost": 1,
            "tool_calls": [CALL],
            "started_at": NOW,
            "completed_at": None,
            "inline_bytes": 2,
        },
    ),
    (ToolCall, CALL),
]


@pytest.fixture(autouse=True)
async def _layer() -> Any:  # Beanie documents can only be built once registered
    async with in_memory_db():
        yield


@pytest.mark.parametrize(("model", "raw"), DOCUMENTS, ids=lambda v: getattr(v, "__name__", ""))
def test_decode_equals_full_validation(
    model: type[pydantic.BaseModel], raw: dict[str, Any]
) -> None:
    fast, full = decode(model, raw), model.model_validate(raw)
    assert type(fast) is model
    assert fast.model_dump() == full.model_dump()
    assert fast.model_dump(by_alias=True) == full.model_dump(by_alias=True)


def test_decoded_values_have_their_declared_types() -> None:
    run = decode(Run, DOCUMENTS[3][1])
    assert run.status is RunStatus.running
    assert isinstance(run.cost, float)
    assert run.tool_calls[0].input_payload is not None
    message = decode(Message, {**DOCUMENTS[2][1], "role": "user"})
    assert message.role is MessageRole.user
    assert message.idempotency_key is None


def test_naive_and_offset_datetimes_become_utc() -> None:
    raw = dict(DOCUMENTS[1][1])
    raw["created_at"] = NOW.replace(tzinfo=None)
    raw["updated_at"] = NOW.astimezone(timezone(timedelta(hours=2)))
    session = decode(Session, raw)
    assert session.created_at == NOW
    assert session.created_at.tzinfo is UTC
    assert session.updated_at.tzinfo is UTC


@pytest.mark.parametrize(
    "change",
    [{"role": "robot"}, {"seq": "one"}, {"content": 5}, {"session_id": "x"}, {"created_at": "now"}],
)
def test_unexpected_documents_get_full_validation_and_its_errors(change: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        decode(Message, {**DOCUMENTS[2][1], **change})


def test_missing_required_fields_and_extra_keys_fall_back() -> None:
    raw = {k: v for k, v in DOCUMENTS[2][1].items() if k != "seq"}
    with pytest.raises(pydantic.ValidationError):
        decode(Message, raw)
    extra = decode(Message, {**DOCUMENTS[2][1], "legacy": 1})
    assert extra.seq == 1


def test_values_pydantic_would_coerce_are_coerced_through_the_fallback() -> None:
    message = decode(Message, {**DOCUMENTS[2][1], "seq": "7"})
    assert message.seq == 7
