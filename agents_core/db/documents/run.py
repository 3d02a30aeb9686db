"""One agent execution, with the tool calls it made embedded in call order.

A run is recorded in one of two ways: step by step while it happens (``AgentRunner``: start,
then each call appended, then complete), or whole once it has finished (a framework's run,
``RunsRepository.insert_finished``: ``FinishedRun``). The second kind names where it came from
(``source``, ``external_id``) and may carry ``steps``: what the framework did that is neither a
model call nor a tool call (a handoff, a guardrail, an agent taking over, a custom span).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple

import pymongo
from beanie import Document
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymongo import IndexModel

from agents_core.db._items import decode_item
from agents_core.db.documents._common import ObjectIdField, Record, UtcDatetime, utcnow
from agents_core.db.documents.payload import PayloadRef

__all__ = [
    "STEP_DATA_ESCAPED",
    "CallKind",
    "FinishedRun",
    "FinishedToolCall",
    "ModelCall",
    "ModelCallStatus",
    "NewToolCall",
    "Price",
    "Run",
    "RunDocument",
    "RunFields",
    "RunStatus",
    "RunStep",
    "Score",
    "StepStatus",
    "ToolCall",
    "ToolCallResult",
    "ToolCallStatus",
]


class RunStatus(StrEnum):
    running = "running"
    completed = "completed"
    failed = "failed"


class ToolCallStatus(StrEnum):
    pending = "pending"
    success = "success"
    error = "error"


class ModelCallStatus(StrEnum):
    success = "success"
    error = "error"


class StepStatus(StrEnum):
    success = "success"
    error = "error"


class CallKind(StrEnum):
    """What ``RunFields.call_order`` records for each call (or step) appended to a run."""

    model = "model"
    tool = "tool"
    step = "step"


class Price(Record):
    """What a model charges, in currency units per million tokens.

    Cached input tokens are a part of the input tokens, priced at ``cached_input_per_million``
    (the input rate when not given), never counted on top. Each rate is a finite number from 0:
    an infinite or NaN rate would make every cost it priced, and every total it joined, infinite
    or NaN (and not JSON).
    """

    input_per_million: float = Field(ge=0, allow_inf_nan=False)
    output_per_million: float = Field(ge=0, allow_inf_nan=False)
    cached_input_per_million: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float:
        """The cost of one call with this usage."""
        cached = min(cached_input_tokens, input_tokens)
        cached_rate = (
            self.input_per_million
            if self.cached_input_per_million is None
            else self.cached_input_per_million
        )
        return (
            (input_tokens - cached) * self.input_per_million
            + cached * cached_rate
            + output_tokens * self.output_per_million
        ) / 1_000_000


class ModelCall(Record):
    """One call of a model during a run, embedded in the run in call order."""

    #: The model that answered (as the API names it), or the one asked for if it failed.
    model: str
    started_at: UtcDatetime
    duration_ms: float
    #: All prompt tokens, cached ones included.
    input_tokens: int = 0
    output_tokens: int = 0
    #: The part of ``input_tokens`` served from the provider's cache.
    cached_input_tokens: int = 0
    #: The part of ``output_tokens`` spent on reasoning.
    reasoning_tokens: int = 0
    cost: float = 0.0
    #: The price ``cost`` was computed from (``None``: no price was given, cost 0).
    price: Price | None = None
    #: The API's own finish reason (``stop``, ``tool_calls``, ``length``, …).
    finish_reason: str | None = None
    status: ModelCallStatus = ModelCallStatus.success
    error: str | None = None
    #: The ``seq`` of the newest message of the history the model was sent (``None``: not
    #: recorded). It places the call among the session's messages without reading clocks.
    history_seq: int | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class ToolCall(Record):
    """A tool execution, embedded in its run (the record and the stored shape are one).

    ``id`` is an opaque string that names the run too, so completing a tool call addresses one
    run document by ``_id`` (a single-shard write once runs are sharded).
    """

    id: str
    run_id: ObjectIdField
    tool_name: str
    input: str
    output: str | None = None
    status: ToolCallStatus = ToolCallStatus.pending
    #: The model's id of the call this executes (its ``RequestedToolCall``), if a model asked.
    request_id: str | None = None
    started_at: UtcDatetime = Field(default_factory=utcnow)
    completed_at: UtcDatetime | None = None
    duration_ms: float | None = None
    #: Set when ``input`` was too large to embed: where the text is stored. ``ToolCallsRepository``
    #: and ``RunsRepository.find_by_id`` return the full text in ``input`` all the same.
    input_payload: PayloadRef | None = None
    #: The same for ``output``.
    output_payload: PayloadRef | None = None
    #: What went wrong, as the framework that ran the tool reported it (a framework's run:
    #: ``output`` then holds what the model was told instead).
    error: str | None = None


#: Stored beside a step's ``data`` whose field names were escaped (never part of the record).
STEP_DATA_ESCAPED = "data_keys_escaped"


class RunStep(Record):
    """Something a framework's run did that is neither a model call nor a tool call.

    ``kind`` is the framework's own word for it (``handoff``, ``guardrail``, ``agent``,
    ``custom``, ``mcp_tools``, …), ``name`` what the views show, ``data`` the framework's
    details as a JSON object (kept exactly: field names MongoDB refuses are escaped in storage,
    as a message's item is, and read back as given). ``AgentRunner`` records one of kind
    ``warning`` when a run starts with registered tools its agent has not enabled.
    """

    kind: str
    name: str
    started_at: UtcDatetime
    duration_ms: float | None = None
    status: StepStatus = StepStatus.success
    error: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    #: The ``seq`` of the newest message of the conversation when the step happened (``None``:
    #: not recorded, as a framework's steps). It places the step among the session's messages
    #: as ``ModelCall.history_seq`` places a model call, without reading clocks.
    history_seq: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _stored_data(cls, value: Any) -> Any:
        """A stored step whose data names were escaped is read back as it was given."""
        if isinstance(value, dict) and value.get(STEP_DATA_ESCAPED):
            value = {**value, "data": decode_item(value["data"], True)}
            del value[STEP_DATA_ESCAPED]
        return value


class Score(Record):
    """A judgement of a run by a user or an evaluator (``RunsRepository.add_score``): a name and
    either a number (``value``) or a label (``label``), never both, embedded in the run in the
    order the scores were added."""

    #: Unique within the run, given by whoever adds it: an add sent again with the same id (a
    #: retry) adds nothing.
    id: str
    #: What was judged: ``helpfulness``, ``correct``, ``thumbs``, …
    name: str
    #: A number, finite: ``0.8``, ``4``, ``-1``.
    value: float | None = Field(default=None, allow_inf_nan=False)
    #: A category: ``pass``, ``fail``, ``relevant``.
    label: str | None = None
    #: Why (an evaluator's explanation, a reviewer's note).
    comment: str | None = None
    #: Who gave it: a user, an evaluator's name.
    by: str | None = None
    created_at: UtcDatetime

    @model_validator(mode="after")
    def _value_or_label(self) -> Score:
        if (self.value is None) == (self.label is None):
            raise ValueError("a score has a value or a label, not both and not neither")
        return self


class NewToolCall(NamedTuple):
    """A tool call a model asked for, to record as ``pending`` with the model call
    (``RunsRepository.record_model_call``)."""

    tool_name: str
    input: str
    #: The model's id of the call (its ``RequestedToolCall``).
    request_id: str | None = None


class ToolCallResult(NamedTuple):
    """How a pending tool call ended (``ToolCallsRepository.complete_many``)."""

    #: The ``ToolCall``'s id.
    id: str
    output: str
    status: ToolCallStatus | str
    duration_ms: float
    #: When it started executing (``None``: keep the ``started_at`` recorded with the call).
    started_at: datetime | None = None


class RunFields(BaseModel):
    """The stored fields of a run that its record shows: declared here once."""

    session_id: ObjectIdField
    agent_id: ObjectIdField
    status: RunStatus = RunStatus.running
    error: str | None = None
    tokens: int = 0
    cost: float = 0.0
    tool_calls: list[ToolCall] = Field(default_factory=list)
    #: The model calls of the run, oldest first (bounded by the runner's ``max_steps``).
    model_calls: list[ModelCall] = Field(default_factory=list)
    #: The kind of each call in the order the writes appended them: the k-th ``model`` entry is
    #: ``model_calls[k]``, the k-th ``tool`` entry ``tool_calls[k]``. Every write that appends a
    #: call pushes its kind here in the same update, so the order is the server's, never a clock's
    #: (two calls often share a millisecond). Empty on runs recorded before it existed.
    call_order: list[CallKind] = Field(default_factory=list)
    started_at: UtcDatetime = Field(default_factory=utcnow)
    completed_at: UtcDatetime | None = None
    #: The ``seq`` of the user message that started the run's turn (set by the runner).
    input_seq: int | None = None
    #: For a replay (``AgentRunner.replay``): the run it replays.
    replay_of: ObjectIdField | None = None
    #: A framework's run (``RunsRepository.insert_finished``): the framework that ran it
    #: (``openai-agents``, …) and its own id of the run (a trace id), unique per source.
    source: str | None = None
    external_id: str | None = None
    #: A framework's run: what it did besides model and tool calls, in the order it happened
    #: (``call_order`` places each step among the calls).
    steps: list[RunStep] = Field(default_factory=list)
    #: Users' and evaluators' scores of the run, in the order they were added (bounded by
    #: ``MAX_SCORES_PER_RUN``).
    scores: list[Score] = Field(default_factory=list)


class Run(RunFields, Record):
    """A run, as the repositories return it."""

    id: ObjectIdField = Field(alias="_id")

    def calls(self) -> list[ModelCall | ToolCall | RunStep]:
        """The run's model calls, tool calls and steps in the order they were recorded.

        That is ``call_order``'s order. A run recorded before ``call_order`` existed (or whose
        order does not account for every call) is ordered by start time instead, a model call
        first at the same instant, then a tool call, then a step, each kind keeping its own
        recorded order.
        """
        model_calls, tool_calls, steps = self.model_calls, self.tool_calls, self.steps
        order = self.call_order
        if (
            order.count(CallKind.model) == len(model_calls)
            and order.count(CallKind.tool) == len(tool_calls)
            and order.count(CallKind.step) == len(steps)
        ):
            kinds: dict[CallKind, Iterator[ModelCall | ToolCall | RunStep]] = {
                CallKind.model: iter(model_calls),
                CallKind.tool: iter(tool_calls),
                CallKind.step: iter(steps),
            }
            return [next(kinds[kind]) for kind in order]
        ranked: list[tuple[datetime, int, int, ModelCall | ToolCall | RunStep]] = [
            (call.started_at, 0, n, call) for n, call in enumerate(model_calls)
        ]
        ranked += [(call.started_at, 1, n, call) for n, call in enumerate(tool_calls)]
        ranked += [(step.started_at, 2, n, step) for n, step in enumerate(steps)]
        ranked.sort(key=lambda entry: entry[:3])
        return [entry[3] for entry in ranked]


class FinishedToolCall(BaseModel):
    """A tool call of a finished framework run, as ``RunsRepository.insert_finished`` takes it
    (the repository gives it its id)."""

    model_config = ConfigDict(frozen=True)

    tool_name: str
    input: str
    output: str | None = None
    status: ToolCallStatus = ToolCallStatus.success
    error: str | None = None
    #: The model's id of the call, where the framework says it.
    request_id: str | None = None
    started_at: UtcDatetime
    duration_ms: float | None = None


class FinishedRun(BaseModel):
    """A framework's run that has finished, for ``RunsRepository.insert_finished``.

    ``calls`` are its model calls, tool calls and steps in the order they happened (the list's
    order is what ``Run.calls`` returns, never re-sorted by a clock). ``external_id`` is the
    framework's id of the run, unique per ``source``: the run's ``_id`` is derived from the two,
    so the same run is never stored twice.
    """

    model_config = ConfigDict(frozen=True)

    source: str
    external_id: str
    session_id: ObjectIdField
    agent_id: ObjectIdField
    status: RunStatus = RunStatus.completed
    error: str | None = None
    started_at: UtcDatetime
    completed_at: UtcDatetime
    calls: list[ModelCall | FinishedToolCall | RunStep] = Field(default_factory=list)
    #: Of a run the framework reports in parts (an OpenAI Agents SDK run resumed after an
    #: interruption continues its trace): this part's id, unique within the run. A part of a
    #: run stored already is appended to it: its calls after the run's, its status, error and
    #: end the run's from then on. The same part given again changes nothing.
    part: str | None = None


class RunDocument(Document, RunFields):
    """The ``runs`` collection, for read-only Beanie queries (writes: the repositories)."""

    #: Bytes of tool-call text embedded in this document (bounded; the rest is spilled), and of
    #: a framework run's error texts and step data.
    inline_bytes: int = 0
    #: A framework run reported in parts (``FinishedRun.part``): the parts stored, so that one
    #: given again is not appended twice.
    parts: list[str] = Field(default_factory=list)

    class Settings:
        name = "runs"
        use_revision = False
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel(
                [("session_id", pymongo.ASCENDING), ("started_at", pymongo.ASCENDING)],
                name="session_id_started_at",
            ),
            IndexModel(
                [("status", pymongo.ASCENDING), ("started_at", pymongo.ASCENDING)],
                name="status_started_at",
            ),
            # The trace view's run listing, newest first: every run, or one agent's.
            IndexModel(
                [("started_at", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)],
                name="started_at_id",
            ),
            IndexModel(
                [("agent_id", pymongo.ASCENDING), ("started_at", pymongo.DESCENDING)],
                name="agent_id_started_at",
            ),
        ]
