"""Bad input, on both backends: every refused call raises its documented error and writes nothing.

Each case is one bad call of one public repository method against a realistic database (an
agent, a full agent, two users' sessions with messages, a running run with tool calls and a
completed run). The test snapshots every collection as BSON bytes before and after the call:
a refused call must leave the database byte-for-byte unchanged, not even an ``updated_at``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import pytest
import pytest_asyncio
from bson import ObjectId

from agents_core.db import (
    Agent,
    AgentsRepository,
    AlreadyExistsError,
    CreateAgentDTO,
    DatabaseError,
    ExternalSessionDTO,
    FinishedRun,
    FinishedToolCall,
    InvalidIdError,
    InvalidInputError,
    InvalidStateError,
    Message,
    MessagesRepository,
    ModelCall,
    NewMessage,
    NewToolCall,
    NotFoundError,
    RequestedToolCall,
    Run,
    RunsRepository,
    RunStatus,
    RunStep,
    Session,
    SessionsRepository,
    StepStatus,
    ToolCall,
    ToolCallResult,
    ToolCallsRepository,
    ToolCallStatus,
    get_database,
)
from agents_core.db.client import get_settings
from agents_core.db.limits import (
    MAX_ERROR_BYTES,
    MAX_INSTRUCTIONS_BYTES,
    MAX_NAME_LENGTH,
    MAX_SCORE_COMMENT_BYTES,
    MAX_STEP_DATA_BYTES,
    MAX_STEPS_PER_RUN,
)
from tests.helpers import Clock

agents = AgentsRepository()
sessions = SessionsRepository()
messages = MessagesRepository()
runs = RunsRepository()
calls = ToolCallsRepository()

#: An id of the right shape that names nothing.
NOWHERE = ObjectId()
#: Query operators where a plain value belongs.
NE: Any = {"$ne": None}
GT: Any = {"$gt": ""}
REGEX: Any = {"$regex": ".*"}
TOO_LONG_NAME = "n" * (MAX_NAME_LENGTH + 1)
LONE_SURROGATE = "half \ud800 a pair"


@dataclass(frozen=True)
class State:
    """What the database holds before every case."""

    agent: Agent  # "helper", tools ["search", "clock"]
    full_agent: Agent  # as many tools as an agent may enable
    session: Session  # user u-42, routed to ``agent``, with three messages
    message: Message  # the session's first message (idempotency key "turn-1")
    running: Run  # running, with one pending and one completed tool call
    pending_call: ToolCall
    done_call: ToolCall
    completed: Run  # completed, in the same session


@dataclass(frozen=True)
class Case:
    call: Callable[[State], Awaitable[object]]
    error: type[DatabaseError]
    about: str  # the ``field`` (InvalidInputError) or ``entity`` (the others) the error names


def case(
    id: str, error: type[DatabaseError], about: str, call: Callable[[State], Awaitable[object]]
) -> Any:
    return pytest.param(Case(call, error, about), id=id)


def max_message_bytes() -> int:
    return get_settings().max_message_bytes


def too_many_tools() -> list[str]:
    return [f"t{i}" for i in range(get_settings().max_tools_per_agent + 1)]


def model_call_fields() -> dict[str, Any]:
    return {"model": "m", "started_at": datetime.now(UTC), "duration_ms": 1.0, "input_tokens": 1}


def model_call() -> ModelCall:
    return ModelCall(**model_call_fields())


def finished_run(
    s: State, external_id: str = "trace-1", calls: list[Any] | None = None
) -> FinishedRun:
    now = datetime.now(UTC)
    return FinishedRun.model_construct(
        source="framework",
        external_id=external_id,
        session_id=s.session.id,
        agent_id=s.agent.id,
        status=RunStatus.completed,
        error=None,
        started_at=now,
        completed_at=now,
        calls=[model_call(), tool_call(), step()] if calls is None else calls,
    )


def tool_call(**changes: Any) -> FinishedToolCall:
    fields = {
        "tool_name": "search",
        "input": "{}",
        "output": "found",
        "started_at": datetime.now(UTC),
    }
    return FinishedToolCall.model_construct(
        **{**fields, "status": ToolCallStatus.success, **changes}
    )


def step(**changes: Any) -> RunStep:
    fields = {"kind": "handoff", "name": "a → b", "started_at": datetime.now(UTC), "data": {}}
    return RunStep.model_construct(**{**fields, "status": StepStatus.success, **changes})


def call_in(run: Run, call: ToolCall) -> str:
    """The id ``call`` would have if it belonged to ``run``."""
    return f"{run.id}-{call.id.split('-')[1]}"


CASES = [
    # AgentsRepository.create
    case("agents.create:not-a-dto", InvalidInputError, "data", lambda s: agents.create(NE)),
    case(
        "agents.create:name-whitespace",
        InvalidInputError,
        "name",
        lambda s: agents.create(CreateAgentDTO(name=" \t\u3000 ")),
    ),
    case(
        "agents.create:name-newline",
        InvalidInputError,
        "name",
        lambda s: agents.create(CreateAgentDTO(name="helper\nadmin")),
    ),
    case(
        "agents.create:name-line-separator",
        InvalidInputError,
        "name",
        lambda s: agents.create(CreateAgentDTO(name="helper\u2028admin")),
    ),
    case(
        "agents.create:name-too-long",
        InvalidInputError,
        "name",
        lambda s: agents.create(CreateAgentDTO(name=TOO_LONG_NAME)),
    ),
    case(
        "agents.create:name-operator",
        InvalidInputError,
        "name",
        lambda s: agents.create(CreateAgentDTO.model_construct(name=NE, tools=[])),
    ),
    case(
        "agents.create:name-taken",
        AlreadyExistsError,
        "agent",
        lambda s: agents.create(CreateAgentDTO(name=s.agent.name)),
    ),
    case(
        "agents.create:tool-blank",
        InvalidInputError,
        "tool_name",
        lambda s: agents.create(CreateAgentDTO(name="new", tools=["search", "  "])),
    ),
    case(
        "agents.create:too-many-tools",
        InvalidInputError,
        "tools",
        lambda s: agents.create(CreateAgentDTO(name="new", tools=too_many_tools())),
    ),
    case(
        "agents.create:tools-none",
        InvalidInputError,
        "tools",
        lambda s: agents.create(CreateAgentDTO.model_construct(name="new", tools=None)),
    ),
    case(
        "agents.create:tools-string",
        InvalidInputError,
        "tools",
        lambda s: agents.create(CreateAgentDTO.model_construct(name="new", tools="search")),
    ),
    case(
        "agents.create:instructions-too-large",
        InvalidInputError,
        "instructions",
        lambda s: agents.create(
            CreateAgentDTO(name="new", instructions="x" * (MAX_INSTRUCTIONS_BYTES + 1))
        ),
    ),
    # AgentsRepository.get_or_create: what create refuses (an existing name is no error)
    case(
        "agents.get_or_create:not-a-dto",
        InvalidInputError,
        "data",
        lambda s: agents.get_or_create(NE),
    ),
    case(
        "agents.get_or_create:name-operator",
        InvalidInputError,
        "name",
        lambda s: agents.get_or_create(CreateAgentDTO.model_construct(name=NE, tools=[])),
    ),
    case(
        "agents.get_or_create:name-newline",
        InvalidInputError,
        "name",
        lambda s: agents.get_or_create(CreateAgentDTO(name="helper\nadmin")),
    ),
    case(
        "agents.get_or_create:new-tool-blank",
        InvalidInputError,
        "tool_name",
        lambda s: agents.get_or_create(CreateAgentDTO(name="new", tools=["search", "  "])),
    ),
    case(
        "agents.get_or_create:new-too-many-tools",
        InvalidInputError,
        "tools",
        lambda s: agents.get_or_create(CreateAgentDTO(name="new", tools=too_many_tools())),
    ),
    # AgentsRepository.find_by_name
    case("agents.find_by_name:ne", InvalidInputError, "name", lambda s: agents.find_by_name(NE)),
    case(
        "agents.find_by_name:regex",
        InvalidInputError,
        "name",
        lambda s: agents.find_by_name(REGEX),
    ),
    # AgentsRepository.list_by_name
    case(
        "agents.list_by_name:after-ne",
        InvalidInputError,
        "after",
        lambda s: agents.list_by_name(after=NE),
    ),
    case(
        "agents.list_by_name:limit-0",
        InvalidInputError,
        "limit",
        lambda s: agents.list_by_name(limit=0),
    ),
    case(
        "agents.list_by_name:limit-str",
        InvalidInputError,
        "limit",
        lambda s: agents.list_by_name(limit="5"),
    ),
    # AgentsRepository.list_recent_ids
    case(
        "agents.list_recent_ids:limit-0",
        InvalidInputError,
        "limit",
        lambda s: agents.list_recent_ids(limit=0),
    ),
    # AgentsRepository.find_by_id
    case(
        "agents.find_by_id:12-bytes",
        InvalidIdError,
        "agent",
        lambda s: agents.find_by_id(s.agent.id.binary),
    ),
    case(
        "agents.find_by_id:session-id",
        NotFoundError,
        "agent",
        lambda s: agents.find_by_id(s.session.id),
    ),
    # AgentsRepository.update_instructions
    case(
        "agents.update_instructions:id-23-hex",
        InvalidIdError,
        "agent",
        lambda s: agents.update_instructions(str(s.agent.id)[:-1], "x"),
    ),
    case(
        "agents.update_instructions:run-id",
        NotFoundError,
        "agent",
        lambda s: agents.update_instructions(s.running.id, "x"),
    ),
    case(
        "agents.update_instructions:update-operator",
        InvalidInputError,
        "instructions",
        lambda s: agents.update_instructions(s.agent.id, {"$set": {"name": "root"}}),
    ),
    # AgentsRepository.enable_tool
    case(
        "agents.enable_tool:unknown",
        NotFoundError,
        "agent",
        lambda s: agents.enable_tool(NOWHERE, "x"),
    ),
    case(
        "agents.enable_tool:tool-escape-sequence",
        InvalidInputError,
        "tool_name",
        lambda s: agents.enable_tool(s.agent.id, "\x1b[2Jsearch"),
    ),
    case(
        "agents.enable_tool:tool-each-operator",
        InvalidInputError,
        "tool_name",
        lambda s: agents.enable_tool(s.agent.id, {"$each": ["rm", "sudo"]}),
    ),
    case(
        "agents.enable_tool:at-capacity",
        InvalidStateError,
        "agent",
        lambda s: agents.enable_tool(s.full_agent.id, "one-more"),
    ),
    # AgentsRepository.get_tools
    case("agents.get_tools:gt", InvalidIdError, "agent", lambda s: agents.get_tools(GT)),
    case(
        "agents.get_tools:message-id",
        NotFoundError,
        "agent",
        lambda s: agents.get_tools(s.message.id),
    ),
    # SessionsRepository.create
    case(
        "sessions.create:title-invisible",
        InvalidInputError,
        "title",
        lambda s: sessions.create("\u200b\ufeff"),
    ),
    case(
        "sessions.create:title-operator", InvalidInputError, "title", lambda s: sessions.create(NE)
    ),
    case(
        "sessions.create:user-id-operator",
        InvalidInputError,
        "user_id",
        lambda s: sessions.create("t", user_id=NE),
    ),
    case(
        "sessions.create:user-id-int",
        InvalidInputError,
        "user_id",
        lambda s: sessions.create("t", user_id=42),
    ),
    case(
        "sessions.create:user-id-empty",
        InvalidInputError,
        "user_id",
        lambda s: sessions.create("t", user_id=""),
    ),
    # SessionsRepository.find_by_id
    case(
        "sessions.find_by_id:none", InvalidIdError, "session", lambda s: sessions.find_by_id(None)
    ),
    case(
        "sessions.find_by_id:agent-id",
        NotFoundError,
        "session",
        lambda s: sessions.find_by_id(s.agent.id),
    ),
    case(
        "sessions.find_by_id:limit-negative",
        InvalidInputError,
        "message_limit",
        lambda s: sessions.find_by_id(s.session.id, message_limit=-1),
    ),
    # SessionsRepository.find_with_agent
    case(
        "sessions.find_with_agent:none",
        InvalidIdError,
        "session",
        lambda s: sessions.find_with_agent(None),
    ),
    case(
        "sessions.find_with_agent:agent-id",
        NotFoundError,
        "session",
        lambda s: sessions.find_with_agent(s.agent.id),
    ),
    case(
        "sessions.find_with_agent:limit-negative",
        InvalidInputError,
        "message_limit",
        lambda s: sessions.find_with_agent(s.session.id, message_limit=-1),
    ),
    # SessionsRepository.set_active_agent
    case(
        "sessions.set_active_agent:session-non-hex",
        InvalidIdError,
        "session",
        lambda s: sessions.set_active_agent("z" * 24, s.agent.id),
    ),
    case(
        "sessions.set_active_agent:agent-list",
        InvalidIdError,
        "agent",
        lambda s: sessions.set_active_agent(s.session.id, [s.agent.id]),
    ),
    case(
        "sessions.set_active_agent:run-id-as-session",
        NotFoundError,
        "session",
        lambda s: sessions.set_active_agent(s.running.id, s.full_agent.id),
    ),
    case(
        "sessions.set_active_agent:session-id-as-agent",
        NotFoundError,
        "agent",
        lambda s: sessions.set_active_agent(s.session.id, s.session.id),
    ),
    # SessionsRepository.list_active
    case(
        "sessions.list_active:user-ne",
        InvalidInputError,
        "user_id",
        lambda s: sessions.list_active(user_id=NE),
    ),
    case(
        "sessions.list_active:user-gt",
        InvalidInputError,
        "user_id",
        lambda s: sessions.list_active(user_id=GT),
    ),
    case(
        "sessions.list_active:limit-zero",
        InvalidInputError,
        "limit",
        lambda s: sessions.list_active(limit=0),
    ),
    case(
        "sessions.list_active:limit-absurd",
        InvalidInputError,
        "limit",
        lambda s: sessions.list_active(user_id="u-42", limit=2**63),
    ),
    # SessionsRepository.archive
    case(
        "sessions.archive:run-id",
        NotFoundError,
        "session",
        lambda s: sessions.archive(s.completed.id),
    ),
    # SessionsRepository.set_title_if_untitled
    case(
        "sessions.set_title_if_untitled:title-operator",
        InvalidInputError,
        "title",
        lambda s: sessions.set_title_if_untitled(s.session.id, NE),
    ),
    case(
        "sessions.set_title_if_untitled:title-line-break",
        InvalidInputError,
        "title",
        lambda s: sessions.set_title_if_untitled(s.session.id, "two\nlines"),
    ),
    case(
        "sessions.set_title_if_untitled:id-operator",
        InvalidIdError,
        "session",
        lambda s: sessions.set_title_if_untitled(NE, "A title"),
    ),
    # SessionsRepository: paged listings, fork, delete
    case(
        "sessions.list_active_page:user-ne",
        InvalidInputError,
        "user_id",
        lambda s: sessions.list_active_page(user_id=NE),
    ),
    case(
        "sessions.list_active_page:limit-zero",
        InvalidInputError,
        "limit",
        lambda s: sessions.list_active_page(limit=0),
    ),
    case(
        "sessions.list_active_page:cursor-garbage",
        InvalidInputError,
        "cursor",
        lambda s: sessions.list_active_page(cursor="not a cursor"),
    ),
    case(
        "sessions.list_active_page:cursor-operator",
        InvalidInputError,
        "cursor",
        lambda s: sessions.list_active_page(cursor=NE),
    ),
    case(
        "sessions.list_active_page:cursor-unknown",
        InvalidInputError,
        "cursor",
        lambda s: sessions.list_active_page(cursor="AAAAAAAAAAAAAAAAAAAAAA"),
    ),
    case(
        "sessions.list_by_user:user-none",
        InvalidInputError,
        "user_id",
        lambda s: sessions.list_by_user(None),
    ),
    case(
        "sessions.list_by_user:user-regex",
        InvalidInputError,
        "user_id",
        lambda s: sessions.list_by_user(REGEX),
    ),
    case(
        "sessions.list_by_user:limit-absurd",
        InvalidInputError,
        "limit",
        lambda s: sessions.list_by_user("u-42", limit=10**6),
    ),
    case(
        "sessions.fork:unknown",
        NotFoundError,
        "session",
        lambda s: sessions.fork(NOWHERE),
    ),
    case(
        "sessions.fork:run-id",
        NotFoundError,
        "session",
        lambda s: sessions.fork(s.running.id),
    ),
    case(
        "sessions.fork:at-seq-beyond-last",
        InvalidInputError,
        "at_seq",
        lambda s: sessions.fork(s.session.id, at_seq=s.session.last_seq + 10),
    ),
    case(
        "sessions.fork:at-seq-negative",
        InvalidInputError,
        "at_seq",
        lambda s: sessions.fork(s.session.id, at_seq=-1),
    ),
    case(
        "sessions.fork:at-seq-str",
        InvalidInputError,
        "at_seq",
        lambda s: sessions.fork(s.session.id, at_seq="2"),
    ),
    case(
        "sessions.fork:title-operator",
        InvalidInputError,
        "title",
        lambda s: sessions.fork(s.session.id, title=NE),
    ),
    case(
        "sessions.delete:malformed",
        InvalidIdError,
        "session",
        lambda s: sessions.delete("not-an-id"),
    ),
    case(
        "sessions.delete:operator",
        InvalidIdError,
        "session",
        lambda s: sessions.delete(NE),
    ),
    # SessionsRepository.list_ids_by_prefix
    case(
        "sessions.list_ids_by_prefix:empty",
        InvalidIdError,
        "session",
        lambda s: sessions.list_ids_by_prefix(""),
    ),
    case(
        "sessions.list_ids_by_prefix:25-hex",
        InvalidIdError,
        "session",
        lambda s: sessions.list_ids_by_prefix(str(s.session.id) + "0"),
    ),
    case(
        "sessions.list_ids_by_prefix:not-hex",
        InvalidIdError,
        "session",
        lambda s: sessions.list_ids_by_prefix("65g"),
    ),
    case(
        "sessions.list_ids_by_prefix:regex",
        InvalidIdError,
        "session",
        lambda s: sessions.list_ids_by_prefix(REGEX),
    ),
    case(
        "sessions.list_ids_by_prefix:limit-zero",
        InvalidInputError,
        "limit",
        lambda s: sessions.list_ids_by_prefix("6", limit=0),
    ),
    # SessionsRepository.list_recent_ids
    case(
        "sessions.list_recent_ids:limit-unbounded",
        InvalidInputError,
        "limit",
        lambda s: sessions.list_recent_ids(limit=10**6),
    ),
    case(
        "sessions.list_recent_ids:limit-str",
        InvalidInputError,
        "limit",
        lambda s: sessions.list_recent_ids(limit="5"),
    ),
    # SessionsRepository.find_transcript_page
    case(
        "sessions.find_transcript_page:not-an-id",
        InvalidIdError,
        "session",
        lambda s: sessions.find_transcript_page("nope"),
    ),
    case(
        "sessions.find_transcript_page:unknown",
        NotFoundError,
        "session",
        lambda s: sessions.find_transcript_page(ObjectId()),
    ),
    case(
        "sessions.find_transcript_page:before-negative",
        InvalidInputError,
        "before",
        lambda s: sessions.find_transcript_page(s.session.id, before=-1),
    ),
    case(
        "sessions.find_transcript_page:before-operator",
        InvalidInputError,
        "before",
        lambda s: sessions.find_transcript_page(s.session.id, before=GT),
    ),
    case(
        "sessions.find_transcript_page:limit-0",
        InvalidInputError,
        "limit",
        lambda s: sessions.find_transcript_page(s.session.id, limit=0),
    ),
    # MessagesRepository.create
    case(
        "messages.create:session-padded",
        InvalidIdError,
        "session",
        lambda s: messages.create(f" {s.session.id}", "user", "hi"),
    ),
    case(
        "messages.create:run-id-as-session",
        NotFoundError,
        "session",
        lambda s: messages.create(s.running.id, "user", "hi"),
    ),
    case(
        "messages.create:unknown-session-with-key",
        NotFoundError,
        "session",
        lambda s: messages.create(NOWHERE, "user", "hi", idempotency_key="turn-1"),
    ),
    case(
        "messages.create:role-unknown",
        InvalidInputError,
        "role",
        lambda s: messages.create(s.session.id, "admin", "hi"),
    ),
    case(
        "messages.create:content-bytes",
        InvalidInputError,
        "content",
        lambda s: messages.create(s.session.id, "user", b"hi"),
    ),
    case(
        "messages.create:content-lone-surrogate",
        InvalidInputError,
        "content",
        lambda s: messages.create(s.session.id, "user", LONE_SURROGATE),
    ),
    case(
        "messages.create:content-over-limit-in-utf8",
        InvalidInputError,
        "content",
        lambda s: messages.create(s.session.id, "user", "é" * (max_message_bytes() // 2 + 1)),
    ),
    case(
        "messages.create:key-empty",
        InvalidInputError,
        "idempotency_key",
        lambda s: messages.create(s.session.id, "user", "hi", idempotency_key=""),
    ),
    case(
        "messages.create:key-operator",
        InvalidInputError,
        "idempotency_key",
        lambda s: messages.create(s.session.id, "user", "hi", idempotency_key=NE),
    ),
    case(
        "messages.create:key-newline",
        InvalidInputError,
        "idempotency_key",
        lambda s: messages.create(s.session.id, "user", "hi", idempotency_key="turn-1\n"),
    ),
    case(
        "messages.create:tool-call-id-malformed",
        InvalidIdError,
        "tool call",
        lambda s: messages.create(s.session.id, "tool", "out", tool_call_id="call_1"),
    ),
    case(
        "messages.create:tool-call-id-non-hex",
        InvalidIdError,
        "tool call",
        lambda s: messages.create(
            s.session.id, "tool", "out", tool_call_id=s.pending_call.id[:-1] + "x"
        ),
    ),
    case(
        "messages.create:requested-not-records",
        InvalidInputError,
        "requested_tool_calls",
        lambda s: messages.create(
            s.session.id, "assistant", "", requested_tool_calls=[{"id": "c1", "name": "t"}]
        ),
    ),
    case(
        "messages.create:requested-name-operator",
        InvalidInputError,
        "requested_tool_calls.name",
        lambda s: messages.create(
            s.session.id,
            "assistant",
            "",
            requested_tool_calls=[
                RequestedToolCall.model_construct(id="c1", name=NE, arguments="")
            ],
        ),
    ),
    case(
        "messages.create:requested-arguments-over-limit",
        InvalidInputError,
        "requested_tool_calls",
        lambda s: messages.create(
            s.session.id,
            "assistant",
            "",
            requested_tool_calls=[
                RequestedToolCall(id=f"c{n}", name="t", arguments="x" * (max_message_bytes() // 2))
                for n in range(3)
            ],
        ),
    ),
    case(
        "messages.create:request-id-operator",
        InvalidInputError,
        "request_id",
        lambda s: messages.create(s.session.id, "tool", "out", request_id=NE),
    ),
    # MessagesRepository.create_batch
    case(
        "messages.create_batch:unknown-session",
        NotFoundError,
        "session",
        lambda s: messages.create_batch(NOWHERE, [NewMessage("user", "hi")]),
    ),
    case(
        "messages.create_batch:not-a-list",
        InvalidInputError,
        "messages",
        lambda s: messages.create_batch(s.session.id, {"role": "user", "content": "hi"}),
    ),
    case(
        "messages.create_batch:a-dict",
        InvalidInputError,
        "messages",
        lambda s: messages.create_batch(s.session.id, [{"role": "user", "content": "hi"}]),
    ),
    case(
        "messages.create_batch:second-role-unknown",
        InvalidInputError,
        "role",
        lambda s: messages.create_batch(
            s.session.id, [NewMessage("user", "ok"), NewMessage("nobody", "x")]
        ),
    ),
    case(
        "messages.create_batch:tool-call-id-malformed",
        InvalidIdError,
        "tool call",
        lambda s: messages.create_batch(
            s.session.id, [NewMessage("tool", "out", tool_call_id=str(s.running.id))]
        ),
    ),
    # MessagesRepository.find_by_session
    case(
        "messages.find_by_session:empty-id",
        InvalidIdError,
        "session",
        lambda s: messages.find_by_session("", 10),
    ),
    case(
        "messages.find_by_session:agent-id",
        NotFoundError,
        "session",
        lambda s: messages.find_by_session(s.agent.id, 10),
    ),
    case(
        "messages.find_by_session:limit-zero",
        InvalidInputError,
        "limit",
        lambda s: messages.find_by_session(s.session.id, 0),
    ),
    # MessagesRepository.search
    case(
        "messages.search:operator",
        InvalidInputError,
        "phrase",
        lambda s: messages.search(REGEX),
    ),
    case(
        "messages.search:user-operator",
        InvalidInputError,
        "user_id",
        lambda s: messages.search("refund", user_id=REGEX),
    ),
    case(
        "messages.search:since-string",
        InvalidInputError,
        "since",
        lambda s: messages.search("refund", since="yesterday"),
    ),
    # MessagesRepository.find_page
    case(
        "messages.find_page:run-id",
        NotFoundError,
        "session",
        lambda s: messages.find_page(s.running.id),
    ),
    case(
        "messages.find_page:before-negative",
        InvalidInputError,
        "before",
        lambda s: messages.find_page(s.session.id, before=-1),
    ),
    case(
        "messages.find_page:after-operator",
        InvalidInputError,
        "after",
        lambda s: messages.find_page(s.session.id, after=GT),
    ),
    case(
        "messages.find_page:after-bool",
        InvalidInputError,
        "after",
        lambda s: messages.find_page(s.session.id, after=True),
    ),
    case(
        "messages.find_page:after-not-below-before",
        InvalidInputError,
        "after",
        lambda s: messages.find_page(s.session.id, after=3, before=3),
    ),
    case(
        "messages.find_page:limit-zero",
        InvalidInputError,
        "limit",
        lambda s: messages.find_page(s.session.id, limit=0),
    ),
    # MessagesRepository.get_last_message
    case(
        "messages.get_last_message:bytes",
        InvalidIdError,
        "session",
        lambda s: messages.get_last_message(str(s.session.id).encode()),
    ),
    case(
        "messages.get_last_message:run-id",
        NotFoundError,
        "session",
        lambda s: messages.get_last_message(s.running.id),
    ),
    # SessionsRepository.find_by_external_id / get_or_create_by_external_id
    case(
        "sessions.find_by_external_id:operator",
        InvalidInputError,
        "external_id",
        lambda s: sessions.find_by_external_id(NE, namespace="sdk"),
    ),
    case(
        "sessions.find_by_external_id:namespace-blank",
        InvalidInputError,
        "namespace",
        lambda s: sessions.find_by_external_id("conv", namespace=" "),
    ),
    case(
        "sessions.get_or_create_by_external_id:newline",
        InvalidInputError,
        "external_id",
        lambda s: sessions.get_or_create_by_external_id("a\nb", namespace="sdk"),
    ),
    case(
        "sessions.get_or_create_by_external_id:user-operator",
        InvalidInputError,
        "user_id",
        lambda s: sessions.get_or_create_by_external_id("conv", namespace="sdk", user_id=GT),
    ),
    case(
        "sessions.get_or_create_by_external_id:title-too-long",
        InvalidInputError,
        "title",
        lambda s: sessions.get_or_create_by_external_id(
            "conv", namespace="sdk", title=TOO_LONG_NAME
        ),
    ),
    # SessionsRepository.get_or_create_many_by_external_id
    case(
        "sessions.get_or_create_many_by_external_id:not-a-list",
        InvalidInputError,
        "keys",
        lambda s: sessions.get_or_create_many_by_external_id(
            ExternalSessionDTO(external_id="conv", namespace="sdk")
        ),
    ),
    case(
        "sessions.get_or_create_many_by_external_id:a-tuple",
        InvalidInputError,
        "keys",
        lambda s: sessions.get_or_create_many_by_external_id([("conv", "sdk")]),
    ),
    case(
        "sessions.get_or_create_many_by_external_id:one-bad-of-two",
        InvalidInputError,
        "namespace",
        lambda s: sessions.get_or_create_many_by_external_id(
            [
                ExternalSessionDTO(external_id="new", namespace="sdk"),
                ExternalSessionDTO.model_construct(external_id="conv", namespace=NE),
            ]
        ),
    ),
    case(
        "sessions.get_or_create_many_by_external_id:title-too-long",
        InvalidInputError,
        "title",
        lambda s: sessions.get_or_create_many_by_external_id(
            [ExternalSessionDTO(external_id="conv", namespace="sdk", title=TOO_LONG_NAME)]
        ),
    ),
    # MessagesRepository.append_items
    case(
        "messages.append_items:unknown-session",
        NotFoundError,
        "session",
        lambda s: messages.append_items(NOWHERE, [{"role": "user", "content": "hi"}]),
    ),
    case(
        "messages.append_items:not-json",
        InvalidInputError,
        "item",
        lambda s: messages.append_items(s.session.id, [{"ok": 1}, {"when": s.session.created_at}]),
    ),
    case(
        "messages.append_items:a-dict-not-a-list",
        InvalidInputError,
        "items",
        lambda s: messages.append_items(s.session.id, {"role": "user"}),
    ),
    case(
        "messages.append_items:run-id",
        NotFoundError,
        "session",
        lambda s: messages.append_items(s.running.id, [{"role": "user", "content": "hi"}]),
    ),
    case(
        "messages.append_items:lone-surrogate",
        InvalidInputError,
        "item",
        lambda s: messages.append_items(
            s.session.id, [{"role": "assistant", "content": LONE_SURROGATE}]
        ),
    ),
    case(
        "messages.append_items:lone-surrogate-in-a-name",
        InvalidInputError,
        "item",
        lambda s: messages.append_items(s.session.id, [{"ok": 1}, {LONE_SURROGATE: 1}]),
    ),
    case(
        "messages.append_items:larger-than-a-document",
        InvalidInputError,
        "item",
        lambda s: messages.append_items(s.session.id, [{"content": "x" * (17 * 1024 * 1024)}]),
    ),
    case(
        "messages.append_items:key-operator",
        InvalidInputError,
        "idempotency_key",
        lambda s: messages.append_items(s.session.id, [{"ok": 1}], idempotency_key=NE),
    ),
    case(
        "messages.append_items:key-of-a-message-not-this-batch",
        InvalidInputError,
        "idempotency_key",
        lambda s: messages.append_items(
            s.session.id, [{"a": 1}, {"b": 2}], idempotency_key="turn-1"
        ),
    ),
    # MessagesRepository.find_items / pop_last / clear
    case(
        "messages.find_items:negative-limit",
        InvalidInputError,
        "limit",
        lambda s: messages.find_items(s.session.id, limit=-1),
    ),
    case(
        "messages.find_items:unknown-session",
        NotFoundError,
        "session",
        lambda s: messages.find_items(NOWHERE),
    ),
    case(
        "messages.pop_last:unknown-session",
        NotFoundError,
        "session",
        lambda s: messages.pop_last(NOWHERE),
    ),
    case(
        "messages.pop_last:malformed",
        InvalidIdError,
        "session",
        lambda s: messages.pop_last("nope"),
    ),
    case(
        "messages.clear:unknown-session",
        NotFoundError,
        "session",
        lambda s: messages.clear(NOWHERE),
    ),
    case(
        "messages.clear:operator",
        InvalidIdError,
        "session",
        lambda s: messages.clear(NE),
    ),
    # RunsRepository.create
    case(
        "runs.create:session-malformed",
        InvalidIdError,
        "session",
        lambda s: runs.create("session-1", s.agent.id),
    ),
    case(
        "runs.create:agent-id-as-session",
        NotFoundError,
        "session",
        lambda s: runs.create(s.agent.id, s.agent.id),
    ),
    case(
        "runs.create:run-id-as-agent",
        NotFoundError,
        "agent",
        lambda s: runs.create(s.session.id, s.running.id),
    ),
    # RunsRepository.start
    case(
        "runs.start:session-id-not-document",
        InvalidInputError,
        "session",
        lambda s: runs.start(s.session.id, s.agent),
    ),
    case(
        "runs.start:session-without-id",
        InvalidInputError,
        "session",
        lambda s: runs.start(Session.model_construct(title="never stored"), s.agent),
    ),
    case(
        "runs.start:session-deleted-since-read",
        NotFoundError,
        "session",
        lambda s: runs.start(s.session.model_copy(update={"id": NOWHERE}), s.agent),
    ),
    case(
        "runs.start:agent-dict",
        InvalidInputError,
        "agent",
        lambda s: runs.start(s.session, s.agent.model_dump()),
    ),
    case(
        "runs.start:steps-a-string",
        InvalidInputError,
        "steps",
        lambda s: runs.start(s.session, s.agent, steps="warning"),
    ),
    case(
        "runs.start:steps-holding-a-dict",
        InvalidInputError,
        "steps",
        lambda s: runs.start(s.session, s.agent, steps=[dict(step())]),
    ),
    case(
        "runs.start:step-name-two-lines",
        InvalidInputError,
        "name",
        lambda s: runs.start(s.session, s.agent, steps=[step(name="a\nb")]),
    ),
    case(
        "runs.start:step-history-seq-negative",
        InvalidInputError,
        "history_seq",
        lambda s: runs.start(s.session, s.agent, steps=[step(history_seq=-1)]),
    ),
    case(
        "runs.start:step-data-too-large",
        InvalidInputError,
        "data",
        lambda s: runs.start(s.session, s.agent, steps=[step(data={"x": "y" * 20_000})]),
    ),
    # RunsRepository.find_by_id
    case("runs.find_by_id:float", InvalidIdError, "run", lambda s: runs.find_by_id(1.5)),
    case(
        "runs.find_by_id:tool-call-id",
        InvalidIdError,
        "run",
        lambda s: runs.find_by_id(s.pending_call.id),
    ),
    case(
        "runs.find_by_id:session-id",
        NotFoundError,
        "run",
        lambda s: runs.find_by_id(s.session.id),
    ),
    # RunsRepository.list_by_session
    case(
        "runs.list_by_session:operator",
        InvalidIdError,
        "session",
        lambda s: runs.list_by_session({"$exists": True}),
    ),
    case(
        "runs.list_by_session:limit-zero",
        InvalidInputError,
        "limit",
        lambda s: runs.list_by_session(s.session.id, limit=0),
    ),
    # RunsRepository.insert_finished
    case(
        "runs.insert_finished:not-a-list",
        InvalidInputError,
        "runs",
        lambda s: runs.insert_finished(finished_run(s)),
    ),
    case(
        "runs.insert_finished:a-dict",
        InvalidInputError,
        "runs",
        lambda s: runs.insert_finished([finished_run(s).model_dump()]),
    ),
    case(
        "runs.insert_finished:source-operator",
        InvalidInputError,
        "source",
        lambda s: runs.insert_finished([finished_run(s).model_copy(update={"source": NE})]),
    ),
    case(
        "runs.insert_finished:external-id-blank",
        InvalidInputError,
        "external_id",
        lambda s: runs.insert_finished([finished_run(s).model_copy(update={"external_id": " "})]),
    ),
    case(
        "runs.insert_finished:still-running",
        InvalidInputError,
        "status",
        lambda s: runs.insert_finished(
            [finished_run(s), finished_run(s, "t2").model_copy(update={"status": "running"})]
        ),
    ),
    case(
        "runs.insert_finished:error-too-large",
        InvalidInputError,
        "error",
        lambda s: runs.insert_finished(
            [finished_run(s).model_copy(update={"error": "e" * (MAX_ERROR_BYTES + 1)})]
        ),
    ),
    case(
        "runs.insert_finished:session-id-not-an-id",
        InvalidIdError,
        "session",
        lambda s: runs.insert_finished(
            [finished_run(s).model_copy(update={"session_id": "session-1"})]
        ),
    ),
    case(
        "runs.insert_finished:naive-time-string",
        InvalidInputError,
        "started_at",
        lambda s: runs.insert_finished(
            [finished_run(s).model_copy(update={"started_at": "2026-01-01"})]
        ),
    ),
    case(
        "runs.insert_finished:call-a-dict",
        InvalidInputError,
        "calls",
        lambda s: runs.insert_finished([finished_run(s, calls=[model_call_fields()])]),
    ),
    case(
        "runs.insert_finished:step-data-not-json",
        InvalidInputError,
        "data",
        lambda s: runs.insert_finished(
            [finished_run(s, calls=[step(data={"at": datetime.now(UTC)})])]
        ),
    ),
    case(
        "runs.insert_finished:step-data-too-large",
        InvalidInputError,
        "data",
        lambda s: runs.insert_finished(
            [finished_run(s, calls=[step(data={"x": "y" * MAX_STEP_DATA_BYTES})])]
        ),
    ),
    case(
        "runs.insert_finished:step-kind-blank",
        InvalidInputError,
        "kind",
        lambda s: runs.insert_finished([finished_run(s, calls=[step(kind="")])]),
    ),
    case(
        "runs.insert_finished:too-many-steps",
        InvalidInputError,
        "calls",
        lambda s: runs.insert_finished([finished_run(s, calls=[step()] * (MAX_STEPS_PER_RUN + 1))]),
    ),
    case(
        "runs.insert_finished:tool-call-pending",
        InvalidInputError,
        "status",
        lambda s: runs.insert_finished(
            [finished_run(s, calls=[tool_call(status=ToolCallStatus.pending)])]
        ),
    ),
    case(
        "runs.insert_finished:tool-input-lone-surrogate",
        InvalidInputError,
        "input",
        lambda s: runs.insert_finished([finished_run(s, calls=[tool_call(input=LONE_SURROGATE)])]),
    ),
    case(
        "runs.insert_finished:model-call-negative-tokens",
        InvalidInputError,
        "input_tokens",
        lambda s: runs.insert_finished(
            [
                finished_run(
                    s,
                    calls=[
                        ModelCall.model_construct(**{**model_call_fields(), "input_tokens": -1})
                    ],
                )
            ]
        ),
    ),
    # RunsRepository.find_by_external_id
    case(
        "runs.find_by_external_id:operator",
        InvalidInputError,
        "external_id",
        lambda s: runs.find_by_external_id(NE, source="framework"),
    ),
    case(
        "runs.find_by_external_id:source-too-long",
        InvalidInputError,
        "source",
        lambda s: runs.find_by_external_id("trace-1", source=TOO_LONG_NAME),
    ),
    # RunsRepository.complete
    case(
        "runs.complete:unknown",
        NotFoundError,
        "run",
        lambda s: runs.complete(NOWHERE, "completed"),
    ),
    case(
        "runs.complete:twice",
        InvalidStateError,
        "run",
        lambda s: runs.complete(s.completed.id, "completed"),
    ),
    case(
        "runs.complete:status-running",
        InvalidInputError,
        "status",
        lambda s: runs.complete(s.running.id, "running"),
    ),
    case(
        "runs.complete:status-operator",
        InvalidInputError,
        "status",
        lambda s: runs.complete(s.running.id, {"$in": ["completed"]}),
    ),
    case(
        "runs.complete:error-operator",
        InvalidInputError,
        "error",
        lambda s: runs.complete(s.running.id, "failed", NE),
    ),
    case(
        "runs.complete:error-too-large",
        InvalidInputError,
        "error",
        lambda s: runs.complete(s.running.id, "failed", "e" * (MAX_ERROR_BYTES + 1)),
    ),
    # RunsRepository.update_usage
    case(
        "runs.update_usage:unknown",
        NotFoundError,
        "run",
        lambda s: runs.update_usage(NOWHERE, 1, 0.1),
    ),
    case(
        "runs.update_usage:tokens-negative",
        InvalidInputError,
        "tokens",
        lambda s: runs.update_usage(s.running.id, -1, 0.1),
    ),
    case(
        "runs.update_usage:tokens-nan",
        InvalidInputError,
        "tokens",
        lambda s: runs.update_usage(s.running.id, math.nan, 0.1),
    ),
    case(
        "runs.update_usage:tokens-inf",
        InvalidInputError,
        "tokens",
        lambda s: runs.update_usage(s.running.id, math.inf, 0.1),
    ),
    case(
        "runs.update_usage:tokens-bool",
        InvalidInputError,
        "tokens",
        lambda s: runs.update_usage(s.running.id, True, 0.1),
    ),
    case(
        "runs.update_usage:tokens-absurd",
        InvalidInputError,
        "tokens",
        lambda s: runs.update_usage(s.running.id, 2**63, 0.1),
    ),
    case(
        "runs.update_usage:cost-negative",
        InvalidInputError,
        "cost",
        lambda s: runs.update_usage(s.running.id, 1, -0.01),
    ),
    case(
        "runs.update_usage:cost-nan",
        InvalidInputError,
        "cost",
        lambda s: runs.update_usage(s.running.id, 1, math.nan),
    ),
    case(
        "runs.update_usage:cost-inf",
        InvalidInputError,
        "cost",
        lambda s: runs.update_usage(s.running.id, 1, math.inf),
    ),
    case(
        "runs.update_usage:cost-absurd",
        InvalidInputError,
        "cost",
        lambda s: runs.update_usage(s.running.id, 1, 1e308),
    ),
    # RunsRepository.add_score
    case(
        "runs.add_score:unknown",
        NotFoundError,
        "run",
        lambda s: runs.add_score(NOWHERE, "quality", 1),
    ),
    case(
        "runs.add_score:name-too-long",
        InvalidInputError,
        "name",
        lambda s: runs.add_score(s.running.id, TOO_LONG_NAME, 1),
    ),
    case(
        "runs.add_score:value-nan",
        InvalidInputError,
        "value",
        lambda s: runs.add_score(s.completed.id, "quality", math.nan),
    ),
    case(
        "runs.add_score:value-operator",
        InvalidInputError,
        "value",
        lambda s: runs.add_score(s.completed.id, "quality", NE),
    ),
    case(
        "runs.add_score:label-blank",
        InvalidInputError,
        "value",
        lambda s: runs.add_score(s.completed.id, "quality", " "),
    ),
    case(
        "runs.add_score:comment-too-large",
        InvalidInputError,
        "comment",
        lambda s: runs.add_score(
            s.completed.id, "quality", 1, comment="c" * (MAX_SCORE_COMMENT_BYTES + 1)
        ),
    ),
    case(
        "runs.add_score:by-operator",
        InvalidInputError,
        "by",
        lambda s: runs.add_score(s.completed.id, "quality", 1, by=NE),
    ),
    # RunsRepository.record_model_call
    case(
        "runs.record_model_call:unknown",
        NotFoundError,
        "run",
        lambda s: runs.record_model_call(NOWHERE, model_call()),
    ),
    case(
        "runs.record_model_call:not-a-model-call",
        InvalidInputError,
        "call",
        lambda s: runs.record_model_call(s.running.id, {"model": "m"}),
    ),
    case(
        "runs.record_model_call:tokens-negative",
        InvalidInputError,
        "input_tokens",
        lambda s: runs.record_model_call(
            s.running.id, ModelCall.model_construct(**{**model_call_fields(), "input_tokens": -1})
        ),
    ),
    case(
        "runs.record_model_call:cost-nan",
        InvalidInputError,
        "cost",
        lambda s: runs.record_model_call(
            s.running.id, model_call().model_copy(update={"cost": float("nan")})
        ),
    ),
    case(
        "runs.record_model_call:model-operator",
        InvalidInputError,
        "model",
        lambda s: runs.record_model_call(
            s.running.id, ModelCall.model_construct(**{**model_call_fields(), "model": NE})
        ),
    ),
    case(
        "runs.record_model_call:tokens-absurd",
        InvalidInputError,
        "input_tokens",
        lambda s: runs.record_model_call(
            s.running.id, model_call().model_copy(update={"input_tokens": 2**63 - 1})
        ),
    ),
    case(
        "runs.record_model_call:tool-name-operator",
        InvalidInputError,
        "tool_name",
        lambda s: runs.record_model_call(
            s.running.id, model_call(), tool_calls=[NewToolCall("t", "{}"), NewToolCall(NE, "{}")]
        ),
    ),
    case(
        "runs.record_model_call:tools-of-a-completed-run",
        InvalidStateError,
        "run",
        lambda s: runs.record_model_call(
            s.completed.id, model_call(), tool_calls=[NewToolCall("t", "{}")]
        ),
    ),
    case(
        "runs.record_model_call:tools-not-tuples",
        InvalidInputError,
        "tool_calls",
        lambda s: runs.record_model_call(s.running.id, model_call(), tool_calls=[("t", "{}")]),
    ),
    # RunsRepository.list_stale
    case(
        "runs.list_stale:negative",
        InvalidInputError,
        "older_than",
        lambda s: runs.list_stale(timedelta(seconds=-1)),
    ),
    case(
        "runs.list_stale:seconds-int",
        InvalidInputError,
        "older_than",
        lambda s: runs.list_stale(3600),
    ),
    case(
        "runs.list_stale:absurd",
        InvalidInputError,
        "older_than",
        lambda s: runs.list_stale(timedelta.max),
    ),
    case(
        "runs.list_stale:operator",
        InvalidInputError,
        "older_than",
        lambda s: runs.list_stale(GT),
    ),
    # RunsRepository.list_ids_by_prefix
    case(
        "runs.list_ids_by_prefix:padded",
        InvalidIdError,
        "run",
        lambda s: runs.list_ids_by_prefix(f" {str(s.running.id)[:6]}"),
    ),
    case(
        "runs.list_ids_by_prefix:object-id",
        InvalidIdError,
        "run",
        lambda s: runs.list_ids_by_prefix(s.running.id),
    ),
    case(
        "runs.list_ids_by_prefix:limit-unbounded",
        InvalidInputError,
        "limit",
        lambda s: runs.list_ids_by_prefix("6", limit=10**6),
    ),
    # RunsRepository.list_recent_ids
    case(
        "runs.list_recent_ids:limit-bool",
        InvalidInputError,
        "limit",
        lambda s: runs.list_recent_ids(limit=True),
    ),
    # RunsRepository.mark_abandoned
    case(
        "runs.mark_abandoned:25-hex",
        InvalidIdError,
        "run",
        lambda s: runs.mark_abandoned(str(s.running.id).upper() + "0"),
    ),
    case(
        "runs.mark_abandoned:completed",
        InvalidStateError,
        "run",
        lambda s: runs.mark_abandoned(s.completed.id),
    ),
    case(
        "runs.mark_abandoned:session-id",
        NotFoundError,
        "run",
        lambda s: runs.mark_abandoned(s.session.id),
    ),
    # ToolCallsRepository.create
    case(
        "tool_calls.create:run-none",
        InvalidIdError,
        "run",
        lambda s: calls.create(None, "search", "{}"),
    ),
    case(
        "tool_calls.create:session-id",
        NotFoundError,
        "run",
        lambda s: calls.create(s.session.id, "search", "{}"),
    ),
    case(
        "tool_calls.create:completed-run",
        InvalidStateError,
        "run",
        lambda s: calls.create(s.completed.id, "search", "{}"),
    ),
    case(
        "tool_calls.create:tool-whitespace",
        InvalidInputError,
        "tool_name",
        lambda s: calls.create(s.running.id, "\n\t", "{}"),
    ),
    case(
        "tool_calls.create:tool-operator",
        InvalidInputError,
        "tool_name",
        lambda s: calls.create(s.running.id, NE, "{}"),
    ),
    case(
        "tool_calls.create:input-dict",
        InvalidInputError,
        "input",
        lambda s: calls.create(s.running.id, "search", {"q": "refund"}),
    ),
    case(
        "tool_calls.create:request-id-newline",
        InvalidInputError,
        "request_id",
        lambda s: calls.create(s.running.id, "search", "{}", request_id="call\n1"),
    ),
    # ToolCallsRepository.complete
    case(
        "tool_calls.complete:id-run-id-only",
        InvalidIdError,
        "tool call",
        lambda s: calls.complete(str(s.running.id), "out", "success", 1.0),
    ),
    case(
        "tool_calls.complete:id-objectid",
        InvalidIdError,
        "tool call",
        lambda s: calls.complete(s.running.id, "out", "success", 1.0),
    ),
    case(
        "tool_calls.complete:id-non-hex",
        InvalidIdError,
        "tool call",
        lambda s: calls.complete(s.pending_call.id[:-1] + "g", "out", "success", 1.0),
    ),
    case(
        "tool_calls.complete:unknown-call",
        NotFoundError,
        "tool call",
        lambda s: calls.complete(f"{s.running.id}-{NOWHERE}", "out", "success", 1.0),
    ),
    case(
        "tool_calls.complete:call-under-another-run",
        NotFoundError,
        "tool call",
        lambda s: calls.complete(call_in(s.completed, s.pending_call), "out", "success", 1.0),
    ),
    case(
        "tool_calls.complete:twice",
        InvalidStateError,
        "tool call",
        lambda s: calls.complete(s.done_call.id, "again", "success", 1.0),
    ),
    case(
        "tool_calls.complete:output-none",
        InvalidInputError,
        "output",
        lambda s: calls.complete(s.pending_call.id, None, "success", 1.0),
    ),
    case(
        "tool_calls.complete:status-pending",
        InvalidInputError,
        "status",
        lambda s: calls.complete(s.pending_call.id, "out", "pending", 1.0),
    ),
    case(
        "tool_calls.complete:duration-negative",
        InvalidInputError,
        "duration_ms",
        lambda s: calls.complete(s.pending_call.id, "out", "success", -0.5),
    ),
    case(
        "tool_calls.complete:duration-nan",
        InvalidInputError,
        "duration_ms",
        lambda s: calls.complete(s.pending_call.id, "out", "success", math.nan),
    ),
    case(
        "tool_calls.complete:duration-absurd",
        InvalidInputError,
        "duration_ms",
        lambda s: calls.complete(s.pending_call.id, "out", "error", 10**400),
    ),
    # RunsRepository.delete
    case("runs.delete:malformed", InvalidIdError, "run", lambda s: runs.delete("run-1")),
    case("runs.delete:operator", InvalidIdError, "run", lambda s: runs.delete(NE)),
    case("runs.delete:unknown", NotFoundError, "run", lambda s: runs.delete(NOWHERE)),
    case("runs.delete:session-id", NotFoundError, "run", lambda s: runs.delete(s.session.id)),
    # ToolCallsRepository.complete_many
    case(
        "tool_calls.complete_many:not-a-list",
        InvalidInputError,
        "results",
        lambda s: calls.complete_many(ToolCallResult(s.pending_call.id, "o", "success", 1.0)),
    ),
    case(
        "tool_calls.complete_many:second-status-pending",
        InvalidInputError,
        "status",
        lambda s: calls.complete_many(
            [
                ToolCallResult(s.pending_call.id, "o", "success", 1.0),
                ToolCallResult(s.pending_call.id, "o", "pending", 1.0),
            ]
        ),
    ),
    case(
        "tool_calls.complete_many:id-objectid",
        InvalidIdError,
        "tool call",
        lambda s: calls.complete_many([ToolCallResult(str(s.running.id), "o", "success", 1.0)]),
    ),
    case(
        "tool_calls.complete_many:unknown-call",
        NotFoundError,
        "tool call",
        lambda s: calls.complete_many(
            [ToolCallResult(call_in(s.running, s.done_call)[:-4] + "ffff", "o", "success", 1.0)]
        ),
    ),
    case(
        "tool_calls.complete_many:completed-already",
        InvalidStateError,
        "tool call",
        lambda s: calls.complete_many([ToolCallResult(s.done_call.id, "o", "success", 1.0)]),
    ),
    case(
        "tool_calls.complete_many:started-at-text",
        InvalidInputError,
        "started_at",
        lambda s: calls.complete_many(
            [ToolCallResult(s.pending_call.id, "o", "success", 1.0, "yesterday")]
        ),
    ),
    # ToolCallsRepository.find_by_run
    case(
        "tool_calls.find_by_run:session-id",
        NotFoundError,
        "run",
        lambda s: calls.find_by_run(s.session.id),
    ),
    case(
        "tool_calls.find_by_run:tool-call-id",
        InvalidIdError,
        "run",
        lambda s: calls.find_by_run(s.done_call.id),
    ),
]


#: Per backend: the state built through the repositories, and the documents it wrote.
_TEMPLATES: dict[str, tuple[State, dict[str, list[dict[str, Any]]]]] = {}


@pytest_asyncio.fixture
async def state(backend: str) -> State:
    """The database every case starts from, in the test's own fresh database.

    The first test on a backend builds it through the repositories; the others insert a copy of
    the documents it wrote (four commands rather than twenty keep the suite fast).
    """
    db = get_database()
    if backend not in _TEMPLATES:
        built = await build_state()
        documents = {
            name: await db[name].find().sort("_id", 1).to_list()
            for name in await db.list_collection_names()
        }
        _TEMPLATES[backend] = built, documents
        return built
    built, documents = _TEMPLATES[backend]
    for name, docs in documents.items():
        if docs:
            await db[name].insert_many(copy.deepcopy(docs))
    return built


async def build_state() -> State:
    agent = await agents.create(
        CreateAgentDTO(
            name="helper", instructions="Be brief.", model="m-1", tools=["search", "clock"]
        )
    )
    cap = get_settings().max_tools_per_agent
    full_agent = await agents.create(
        CreateAgentDTO(name="full", tools=[f"tool-{i}" for i in range(cap)])
    )
    session = await sessions.create("Refund question", user_id="u-42")
    session = await sessions.set_active_agent(session.id, agent.id)
    other = await sessions.create("Another user's chat", user_id="u-7")
    message = await messages.create(
        session.id, "user", "Where is my refund?", idempotency_key="turn-1"
    )
    await messages.create(session.id, "assistant", "Let me look.")
    await messages.create(other.id, "user", "hello")
    completed = await runs.create(session.id, agent.id)
    await runs.update_usage(completed.id, 120, 0.002)
    completed = await runs.complete(completed.id, "completed")
    running = await runs.create(session.id, agent.id)
    done_call = await calls.create(running.id, "clock", "{}")
    done_call = await calls.complete(done_call.id, '"12:00"', "success", 3.5)
    pending_call = await calls.create(running.id, "search", '{"user": "u-42"}')
    await messages.create(session.id, "tool", '"12:00"')
    await runs.update_usage(running.id, 40, 0.0005)
    return State(agent, full_agent, session, message, running, pending_call, done_call, completed)


async def snapshot() -> dict[str, list[bytes]]:
    """Every document of every collection, as BSON bytes, in ``_id`` order."""
    db = get_database()
    return {
        name: [bson.encode(doc) for doc in await db[name].find().sort("_id", 1).to_list()]
        for name in sorted(await db.list_collection_names())
    }


def about(error: DatabaseError) -> object:
    """The field or entity an error names."""
    return getattr(error, "field", None) or getattr(error, "entity", None)


@pytest.mark.parametrize("bad", CASES)
async def test_bad_call_raises_its_error_and_writes_nothing(
    state: State, bad: Case, clock: Clock
) -> None:
    before = await snapshot()
    assert {"agents", "messages", "runs", "sessions"} <= set(before)
    # A millisecond no stored timestamp holds: a refused call that wrote one would show, also
    # when the state was built in the same millisecond (a fast machine).
    clock.advance()
    with pytest.raises(DatabaseError) as info:
        await bad.call(state)
    assert type(info.value) is bad.error, repr(info.value)
    assert about(info.value) == bad.about, repr(info.value)
    assert await snapshot() == before


def test_the_table_covers_every_public_method() -> None:
    repositories = {
        "agents": AgentsRepository,
        "sessions": SessionsRepository,
        "messages": MessagesRepository,
        "runs": RunsRepository,
        "calls": ToolCallsRepository,
    }
    public = {
        (alias, name)
        for alias, cls in repositories.items()
        for name in vars(cls)
        if not name.startswith("_") and callable(getattr(cls, name))
    }
    # Every call in the table reads ``<repository>.<method>(...)``: its first two names.
    called = {tuple(param.values[0].call.__code__.co_names[:2]) for param in CASES}
    assert public - called == set()
    assert len(CASES) >= 60


async def test_no_user_value_is_ever_read_as_a_query_operator(state: State) -> None:
    # Operators where a value belongs are refused, never matched.
    before = await snapshot()
    for operator in (NE, GT, REGEX, {"$exists": True}, {"$in": ["u-42", "u-7"]}):
        with pytest.raises(InvalidInputError):
            await agents.find_by_name(operator)
        with pytest.raises(InvalidInputError):
            await sessions.list_active(user_id=operator)
        with pytest.raises(InvalidIdError):
            await sessions.find_by_id(operator)
        with pytest.raises(InvalidInputError):
            await messages.create(state.session.id, "user", "hi", idempotency_key=operator)
        with pytest.raises(InvalidInputError):
            await calls.create(state.running.id, operator, "{}")
    assert await snapshot() == before
    # Strings that look like operators are plain values: stored and matched literally.
    assert await agents.find_by_name("$ne") is None
    odd = await agents.create(CreateAgentDTO(name="$where", tools=["$set", "a.b", "$[]"]))
    assert (await agents.find_by_name("$where")).id == odd.id
    await agents.enable_tool(odd.id, "$each")
    assert await agents.get_tools(odd.id) == ["$set", "a.b", "$[]", "$each"]
    assert [s.user_id for s in await sessions.list_active(user_id="u-42")] == ["u-42"]
    assert await sessions.list_active(user_id="$ne") == []
    mine = await sessions.create("$gt", user_id="$ne")
    assert [s.id for s in await sessions.list_active(user_id="$ne")] == [mine.id]
    first = await messages.create(mine.id, "user", '{"$ne": null}', idempotency_key="$in")
    # A key that looks like an operator does not match the session's other keyed message.
    other = await messages.create(state.session.id, "user", "new", idempotency_key="$exists")
    assert other.id != state.message.id
    assert other.seq == state.message.seq + 3
    again = await messages.create(mine.id, "user", "retry", idempotency_key="$in")
    assert (again.id, again.content) == (first.id, '{"$ne": null}')
    call = await calls.create(state.running.id, "$where", '{"$gt": ""}')
    done = await calls.complete(call.id, "$set", "success", 0)
    assert (done.tool_name, done.input, done.output) == ("$where", '{"$gt": ""}', "$set")
