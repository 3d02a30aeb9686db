"""``AgentRunner``: one conversation turn, recorded as a run with its tool calls (blueprint §3).

Usage::

    runner = AgentRunner(model=ScriptedModel([...]), tools=registry)
    run = await runner.run(session.id, "What is 12 * 7?")
    print(run.status, run.tokens, run.cost, [c.tool_name for c in run.tool_calls])

A turn: read the session (with its latest messages) and its active agent — a session without
one is refused before anything is written; append the user message; start the run; then
model → tools → model until the model answers without asking for tools, or ``max_steps`` model
calls have been made (the run then fails with a step-limit error). Every tool call is recorded
(pending → success or error, with its measured duration); a tool the agent has not enabled is
recorded as an error and never executed; a tool's exception is recorded and shown to the model.
The model's text, like a tool's output, is stored as valid UTF-8 cut to what a message holds.
Registered tools the agent has not enabled are not offered to the model: the run starts with a
``warning`` step that names them (stored with the run's insert: no extra command, shown by
``show`` and the trace view) and the log says so, once per run.
Each model call's usage is added to the run. On an exception the run is completed ``failed``
with the error text and the exception re-raised; on cancellation it is completed ``failed`` with
``cancelled`` (shielded, so the record is written) and the cancellation re-raised, a model call
it cut short recorded in the same update (an ``error`` call, ``cancelled``, with the time it
had taken); a model call that had answered but was not recorded yet (its answer being stored)
goes with the run's end too, on either path, so its tokens and cost are never lost. The runner
never leaves a run ``running`` unless the database itself is gone (``list_stale`` finds those).

Each step is as few commands as its records allow: the session, its agent and its history are
read together; a model answer that asks for tools is appended, then recorded with the tool
calls it asks for (pending) in one update of the run; the tools run one after the other in the
model's order, their ends are recorded in one update, and their results are appended as one
batch of messages (one ``seq`` reservation, one insert: a reader sees all of them or none); the
last model call is recorded with the run's end. A turn whose model asks for 5 tools and then
answers is 15 commands on MongoDB, 18 on SecantusDB, one of them the run's day totals
(``tests/test_round_trips.py``, ``benchmarks/README.md``). A step interrupted (cancelled, or an
error) records what ran: its tool calls (the interrupted one and those never started as
errors) and the results so far, also when cancelled while the tools' ends are being recorded.
A process killed or a database lost mid-step leaves the
answer that asked for the tools, the step's tool calls ``pending`` (``mark_abandoned`` closes
them) and none of their results: the history stays one a model API accepts
(``agents_core.models.chat`` answers the missing results).

With ``turn_id``, every message of the turn is appended with an idempotency key derived from it
(one append each), so a caller that retries a turn after a network error does not store its
messages twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

from bson import ObjectId

from agents_core.db import (
    Agent,
    AgentsRepository,
    DatabaseError,
    InvalidInputError,
    InvalidStateError,
    Message,
    MessageRole,
    MessagesRepository,
    ModelCall,
    ModelCallStatus,
    NewMessage,
    NewToolCall,
    NotFoundError,
    RequestedToolCall,
    Run,
    RunsRepository,
    RunStatus,
    RunStep,
    SessionsRepository,
    ToolCall,
    ToolCallResult,
    ToolCallsRepository,
    ToolCallStatus,
)
from agents_core.db import validation as check
from agents_core.db.limits import MAX_ERROR_BYTES, MAX_MODEL_CALLS_PER_RUN, MAX_NAME_LENGTH
from agents_core.runner.model import ModelClient, ModelRequest, ModelResponse, ToolRequest
from agents_core.runner.replay import RecordedModel, RecordedTools
from agents_core.runner.tools import ToolError, ToolRegistry

__all__ = ["CANCELLED", "NOT_ENABLED_KIND", "AgentRunner", "turn_window"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The error of a run whose turn was cancelled.
CANCELLED = "cancelled"
#: The kind of the step a run starts with when registered tools are not enabled for its agent.
NOT_ENABLED_KIND = "warning"
#: Tool names that step lists (its ``count`` says how many there are).
_WARNED_TOOLS = 20


class AgentRunner:
    def __init__(
        self,
        model: ModelClient,
        tools: ToolRegistry | None = None,
        *,
        runs: RunsRepository | None = None,
        tool_calls: ToolCallsRepository | None = None,
        messages: MessagesRepository | None = None,
        sessions: SessionsRepository | None = None,
        agents: AgentsRepository | None = None,
        max_steps: int = 8,
        history_limit: int = 50,
    ) -> None:
        if (
            isinstance(max_steps, bool)
            or not isinstance(max_steps, int)
            or not 1 <= max_steps <= MAX_MODEL_CALLS_PER_RUN
        ):
            raise ValueError(f"max_steps must be an integer from 1 to {MAX_MODEL_CALLS_PER_RUN}")
        check.limit(history_limit, "history_limit", minimum=0)  # InvalidInputError, a ValueError
        self.model = model
        self.tools = tools or ToolRegistry()
        self.runs = runs or RunsRepository()
        self.tool_calls = tool_calls or ToolCallsRepository()
        self.messages = messages or MessagesRepository()
        self.sessions = sessions or SessionsRepository()
        #: Kept for callers that pass it; a turn reads the agent with its session.
        self.agents = agents or AgentsRepository()
        self.max_steps = max_steps
        self.history_limit = history_limit

    async def run(
        self, session_id: str | ObjectId, user_input: str, *, turn_id: str | None = None
    ) -> Run:
        """Run one turn of the session's active agent on ``user_input``; returns the final run."""
        if turn_id is not None:  # its messages' keys are "<turn_id>/<role>/<n>"
            check.name(turn_id, "turn_id", max_length=MAX_NAME_LENGTH - 32)
        return await self._turn(session_id, user_input, turn_id=turn_id)

    async def replay(self, run_id: str | ObjectId, *, model: ModelClient | None = None) -> Run:
        """Run a recorded turn again, in a fork of its session taken just before it.

        Tools never run: each call gets the output of the recorded tool call with the same name
        and arguments, in order (an unmatched call is an ``error`` "not in the recording").
        The model is the recorded one (its recorded answers and tool requests) unless ``model``
        is given: replaying with the recorded model reproduces the turn's transcript; with
        another, it shows what that model does with the same tool results, at the cost of model
        calls only. The new run names the one it replays (``replay_of``); the fork is its
        session (``forked_from`` the original).
        """
        original = await self.runs.find_by_id(run_id)
        if original.input_seq is None:
            raise InvalidStateError("run", original.id, "has no recorded turn to replay")
        turn = await self._recorded_turn(original)
        fork = await self.sessions.fork(
            original.session_id, at_seq=original.input_seq - 1, title=f"replay of run {original.id}"
        )
        await self.sessions.set_active_agent(fork.id, original.agent_id)
        # This runner's repositories and limits, with the recording in place of model and tools.
        replaying = copy.copy(self)
        replaying.model = model or RecordedModel(turn[1:], original.model_calls)
        replaying.tools = RecordedTools(self.tools, original.tool_calls)
        return await replaying._turn(fork.id, turn[0].content, replay_of=original.id)

    async def _recorded_turn(self, run: Run) -> list[Message]:
        """The run's turn as stored: its user message, then everything up to the next one."""
        assert run.input_seq is not None
        turn: list[Message] = []
        after, ended = run.input_seq - 1, False
        while not ended:
            page = await self.messages.find_page(run.session_id, after=after, limit=100)
            for message in page:
                if turn and message.role is MessageRole.user:
                    ended = True
                    break
                turn.append(message)
            ended = ended or len(page) < 100
            after = page[-1].seq if page else after
        if not turn or turn[0].seq != run.input_seq or turn[0].role is not MessageRole.user:
            raise InvalidStateError("run", run.id, "its turn's user message is gone")
        return turn

    async def _turn(
        self,
        session_id: str | ObjectId,
        user_input: str,
        *,
        turn_id: str | None = None,
        replay_of: ObjectId | None = None,
    ) -> Run:
        session, agent = await self.sessions.find_with_agent(
            session_id, message_limit=self.history_limit
        )
        if session.active_agent_id is None:
            raise InvalidStateError("session", session.id, "has no active agent")
        if agent is None:
            raise NotFoundError("agent", session.active_agent_id)
        turn = _Turn(session.id, turn_id)
        user_message = await self._append(turn, MessageRole.user, user_input)
        turn.seq = user_message.seq
        # On a retried turn the user message is an earlier one: the history is what came before.
        earlier = [m for m in session.messages if m.seq < user_message.seq]
        history = [*turn_window(earlier), user_message]
        left_out = [name for name in self.tools.names if name not in agent.tools]
        # Cancelled meanwhile, the insert may land: the run it starts is ended, not left running.
        run = await _landing(
            self.runs.start(
                session,
                agent,
                input_seq=user_message.seq,
                replay_of=replay_of,
                steps=[_not_enabled(agent, left_out, user_message.seq)] if left_out else (),
            ),
            self._fail_started,
        )
        if left_out:
            logger.warning(
                "run %s: tools registered but not enabled for agent %r are not offered to the "
                "model: %s",
                run.id,
                agent.name,
                ", ".join(left_out),
            )
        try:
            return await self._steps(run, agent, turn, history)
        except asyncio.CancelledError:
            # A model call not recorded yet (cut short, or answered) goes with the run's end.
            await asyncio.shield(self._fail(run, CANCELLED, model_call=turn.unrecorded_call))
            raise
        except Exception as exc:
            await self._fail(run, _error_text(exc), model_call=turn.unrecorded_call)
            raise

    async def _steps(self, run: Run, agent: Agent, turn: _Turn, history: list[Message]) -> Run:
        definitions = self.tools.definitions(agent.tools)
        known = {message.id for message in history}
        for step in range(self.max_steps):
            response, call = await self._call_model(
                run, turn, ModelRequest(agent, tuple(history), definitions)
            )
            requests = [
                request
                if _recordable(request.id)
                else replace(request, id=f"call_{turn.seq}_{step}_{n}")
                for n, request in enumerate(response.tool_calls)
            ]
            if not requests:
                if response.text:
                    # The message keeps what fits, as valid UTF-8 (as a tool's output).
                    text = _clean(
                        response.text, self.messages.db.settings.max_message_bytes, "answer"
                    )
                    _add(history, known, await self._append(turn, MessageRole.assistant, text))
                # The answer's model call is recorded with the run's end, in one update.
                return await self.runs.complete(run.id, RunStatus.completed, model_call=call)
            for message in await self._tool_step(run, agent, turn, call, response.text, requests):
                _add(history, known, message)
        return await self.runs.complete(
            run.id, RunStatus.failed, f"step limit reached: {self.max_steps} model calls"
        )

    async def _call_model(
        self, run: Run, turn: _Turn, request: ModelRequest
    ) -> tuple[ModelResponse, ModelCall]:
        """One model call: its response and its ``ModelCall``, which the caller records with
        what follows from it. A call that fails is recorded here, and its error raised; a call
        cancelled is left on ``turn`` (an ``error`` call, ``cancelled``, with its duration so
        far), for the run's end to record."""
        started_at, started = datetime.now(UTC), time.perf_counter()

        def failed_call(error: str) -> ModelCall:
            return ModelCall(
                model=_model_name(self.model, request),
                started_at=started_at,
                duration_ms=(time.perf_counter() - started) * 1000,
                status=ModelCallStatus.error,
                error=error,
                price=getattr(self.model, "price", None),
                history_seq=request.messages[-1].seq if request.messages else None,
            )

        try:
            response = await self.model.complete(request)
        except asyncio.CancelledError:
            turn.unrecorded_call = failed_call(CANCELLED)
            raise
        except Exception as exc:
            failed = failed_call(_error_text(exc))
            try:
                await self.runs.record_model_call(run.id, failed)
            except DatabaseError as db_exc:  # the model's error is the one to raise
                logger.warning("model call of run %s could not be recorded: %s", run.id, db_exc)
            raise
        usage = response.usage
        call = ModelCall(
            model=response.model or _model_name(self.model, request),
            started_at=started_at,
            duration_ms=(time.perf_counter() - started) * 1000,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost=response.cost,
            price=response.price,
            finish_reason=response.finish_reason,
            history_seq=request.messages[-1].seq if request.messages else None,
        )
        # Its tokens were spent: until it is recorded, an interrupted turn records it.
        turn.unrecorded_call = call
        return response, call

    async def _tool_step(
        self,
        run: Run,
        agent: Agent,
        turn: _Turn,
        call: ModelCall,
        text: str | None,
        requests: list[ToolRequest],
    ) -> list[Message]:
        """A model answer that asks for tools: the answer appended to the conversation first
        (so a step that never ends still shows what the model said and asked), the model call
        and the tool calls recorded (pending) in one update of the run, the tools executed in
        the model's order, their ends recorded in one update, then their results appended as
        one batch. Interrupted (cancelled, or an error), what ran so far is recorded all the
        same: the calls (the interrupted one and those never started as errors) and the results
        so far (``agents_core.models.chat`` answers the missing ones); then the interruption is
        raised."""
        settings = self.tool_calls.db.settings
        reply = await self._append(
            turn,
            MessageRole.assistant,
            # What the model said with its requests: valid UTF-8, what fits in a message.
            _clean(text or "", settings.max_message_bytes, "answer"),
            requested_tool_calls=[
                RequestedToolCall(
                    id=r.id or "",
                    name=r.name if _recordable(r.name) else _recordable_name(r.name),
                    # The message keeps what fits; the tool call keeps them whole.
                    arguments=_clean(
                        r.arguments, settings.max_message_bytes // len(requests), "arguments"
                    ),
                )
                for r in requests
            ],
        )
        stored = reply.requested_tool_calls
        if len(stored) == len(requests):  # a retried turn answers the stored requests
            requests = [replace(r, id=s.id) for r, s in zip(requests, stored, strict=True)]
        # From here the call is this update's: interrupted while it is sent, it may have been
        # recorded (and counted), so the run's end does not record it again.
        turn.unrecorded_call = None
        # What the model sent is recorded as it is where it can be: a name the layer refuses
        # (blank, too long, control characters) can only be a tool the agent has not enabled.
        # Cancelled meanwhile, the update may land: its tool calls, never run, are then closed.
        calls = await _landing(
            self.runs.record_model_call(
                run.id,
                call,
                tool_calls=[
                    NewToolCall(
                        r.name if r.name in agent.tools else _recordable_name(r.name),
                        _clean(r.arguments, settings.max_payload_bytes, "arguments"),
                        r.id,
                    )
                    for r in requests
                ],
            ),
            lambda recording: self._cancel_recorded(turn, call, recording),
        )
        results: list[ToolCallResult] = []
        messages: list[NewMessage] = []
        for record, request in zip(calls, requests, strict=True):
            started_at, started = datetime.now(UTC), time.perf_counter()
            try:
                output, status, elapsed_ms = await self._execute(agent, request, started)
            except BaseException as exc:
                error = CANCELLED if isinstance(exc, asyncio.CancelledError) else _error_text(exc)
                elapsed_ms = (time.perf_counter() - started) * 1000
                results.append(
                    ToolCallResult(record.id, error, ToolCallStatus.error, elapsed_ms, started_at)
                )
                results += [
                    ToolCallResult(unrun.id, error, ToolCallStatus.error, 0.0)
                    for unrun in calls[len(results) :]
                ]
                await asyncio.shield(self._record_interrupted(turn, results, messages))
                raise
            output = _clean(output, settings.max_payload_bytes, "tool output")
            results.append(ToolCallResult(record.id, output, status, elapsed_ms, started_at))
            # The tool call keeps the whole output; the conversation gets what fits in a message.
            content = _truncate(output, settings.max_message_bytes, f"see tool call {record.id}")
            messages.append(
                NewMessage(MessageRole.tool, content, tool_call_id=record.id, request_id=request.id)
            )
        try:
            await self.tool_calls.complete_many(results)
        except asyncio.CancelledError:  # the tools ran: their ends and results are recorded
            await asyncio.shield(self._record_interrupted(turn, results, messages))
            raise
        return [reply, *await self._append_all(turn, messages)]

    async def _execute(
        self, agent: Agent, request: ToolRequest, started: float
    ) -> tuple[str, ToolCallStatus, float]:
        """Run the tool (if the agent has it enabled): its output, status and duration."""
        if request.name not in agent.tools:
            output = f"tool {request.name!r} is not enabled for agent {agent.name!r}"
            return output, ToolCallStatus.error, 0.0
        try:
            output = await self.tools.execute(request.name, request.arguments)
            status = ToolCallStatus.success
        except ToolError as exc:  # its text is the output (invalid arguments: nothing ran)
            output, status = str(exc), ToolCallStatus.error
        except Exception as exc:  # a tool's failure is information for the model
            output, status = _error_text(exc), ToolCallStatus.error
        return output, status, (time.perf_counter() - started) * 1000

    async def _record_interrupted(
        self, turn: _Turn, results: list[ToolCallResult], messages: list[NewMessage]
    ) -> None:
        try:
            # Those not pending were recorded already: an interrupted update had landed.
            with contextlib.suppress(InvalidStateError):
                await self.tool_calls.complete_many(results)
            if messages:
                await self._append_all(turn, messages)
        except DatabaseError as exc:  # the interruption is what the caller must see
            logger.warning("interrupted tool calls could not be recorded: %s", exc)

    async def _append(
        self,
        turn: _Turn,
        role: MessageRole,
        content: str,
        *,
        tool_call_id: str | None = None,
        request_id: str | None = None,
        requested_tool_calls: Sequence[RequestedToolCall] = (),
    ) -> Message:
        return await self.messages.create(
            turn.session_id,
            role,
            content,
            idempotency_key=turn.key(role.value),
            tool_call_id=tool_call_id,
            request_id=request_id,
            requested_tool_calls=requested_tool_calls,
        )

    async def _append_all(self, turn: _Turn, messages: list[NewMessage]) -> list[Message]:
        """``messages`` appended in order: one batch (one ``seq`` reservation, one insert);
        with a ``turn_id``, one keyed append each, so that a retried turn stores none twice."""
        if turn.turn_id is None:
            return await self.messages.create_batch(turn.session_id, messages)
        return [
            await self._append(
                turn,
                MessageRole(message.role),
                message.content,
                tool_call_id=message.tool_call_id,
                request_id=message.request_id,
                requested_tool_calls=message.requested_tool_calls,
            )
            for message in messages
        ]

    async def _cancel_recorded(
        self, turn: _Turn, call: ModelCall, recording: asyncio.Future[list[ToolCall]]
    ) -> None:
        """The tool calls of a step cancelled while they were being recorded, closed as
        ``cancelled`` errors once the record has answered (a record that failed wrote nothing:
        its model call then goes with the run's end)."""
        try:
            calls = await recording
        except Exception:
            turn.unrecorded_call = call
            return
        results = [ToolCallResult(c.id, CANCELLED, ToolCallStatus.error, 0.0) for c in calls]
        await self._record_interrupted(turn, results, [])

    async def _fail_started(self, starting: asyncio.Future[Run]) -> None:
        """The run of a turn cancelled while it was being started, failed ``cancelled`` once
        its start has answered (a start that failed wrote no run)."""
        try:
            run = await starting
        except Exception:
            return
        await self._fail(run, CANCELLED)

    async def _fail(self, run: Run, error: str, *, model_call: ModelCall | None = None) -> None:
        try:
            try:
                await self.runs.complete(run.id, RunStatus.failed, error, model_call=model_call)
            except InvalidStateError:
                if model_call is None:
                    raise
                # Completed meanwhile, or no room for the call (its tokens overflow the run's
                # total): the run ends without it all the same.
                await self.runs.complete(run.id, RunStatus.failed, error)
        except InvalidStateError:
            pass  # it was completed meanwhile: that record stands
        except DatabaseError as exc:  # the turn's own error is the one to raise
            logger.warning("run %s could not be marked failed: %s", run.id, exc)


async def _landing(
    write: Awaitable[T], on_cancel: Callable[[asyncio.Future[T]], Awaitable[None]]
) -> T:
    """``write``'s result. Cancelled meanwhile, the write goes on (it may land), ``on_cancel``
    is given it to end what it wrote (shielded), and the cancellation is re-raised."""
    future = asyncio.ensure_future(write)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.shield(on_cancel(future))
        raise


class _Turn:
    """The idempotency keys of one turn's messages: ``<turn_id>/<role>/<n>``."""

    def __init__(self, session_id: ObjectId, turn_id: str | None) -> None:
        self.session_id = session_id
        self.turn_id = turn_id
        #: The ``seq`` of the turn's user message (tool-call ids the runner makes name it).
        self.seq = 0
        #: The model call that is not recorded yet: one that answered, or one the turn's
        #: cancellation cut short; an interrupted turn records it with the run's end.
        self.unrecorded_call: ModelCall | None = None
        self._counts: dict[str, int] = {}

    def key(self, kind: str) -> str | None:
        if self.turn_id is None:
            return None
        self._counts[kind] = self._counts.get(kind, 0) + 1
        return f"{self.turn_id}/{kind}/{self._counts[kind]}"


def turn_window(messages: list[Message]) -> list[Message]:
    """``messages`` (a conversation's latest, oldest first) from its first turn boundary on.

    A window cut by a message count can begin inside a turn: with tool results whose request
    was cut off, or with an assistant message whose tool results follow. Model APIs refuse
    both, so the window starts at its first ``user`` message (empty if it holds none).
    """
    for index, message in enumerate(messages):
        if message.role == MessageRole.user:
            return messages[index:]
    return []


def _not_enabled(agent: Agent, names: list[str], seq: int) -> RunStep:
    """The warning step of a run whose registry has tools (``names``) its agent has not
    enabled: the model is not offered them, which is easy to miss (a model without tools
    answers all the same)."""
    shown = [name[:MAX_NAME_LENGTH] for name in names[:_WARNED_TOOLS]]
    listed = ", ".join(shown) + (
        f" and {len(names) - len(shown)} more" if names[len(shown) :] else ""
    )
    return RunStep(
        kind=NOT_ENABLED_KIND,
        name=check.title_from(f"tools not enabled for agent {agent.name}: {listed}") or "tools",
        started_at=datetime.now(UTC),
        duration_ms=0.0,
        data={
            "agent": agent.name,
            "tools": shown,
            "count": len(names),
            "hint": "the model is not offered these registered tools: enable them for the agent "
            "(AgentsRepository.enable_tool) or leave them out of its registry",
        },
        history_seq=seq,
    )


def _model_name(model: ModelClient, request: ModelRequest) -> str:
    name = getattr(model, "model", None)
    if isinstance(name, str) and name:
        return name
    return request.agent.model or type(model).__name__


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return _clean(text, MAX_ERROR_BYTES, "error text")


def _add(history: list[Message], known: set[ObjectId], message: Message) -> None:
    """Append ``message`` unless a retried turn's keyed append returned one already there
    (``known``: the ids in ``history``, kept with it)."""
    if message.id not in known:
        known.add(message.id)
        history.append(message)


def _clean(text: str, max_bytes: int, what: str) -> str:
    """``text`` as the layer stores it: valid UTF-8 (lone surrogates replaced), bounded."""
    valid = text.encode("utf-8", "replace").decode("utf-8")
    return _truncate(valid, max_bytes, f"{what} truncated")


def _recordable(name: object) -> bool:
    try:
        check.name(name, "name")
    except InvalidInputError:
        return False
    return True


def _recordable_name(name: str) -> str:
    try:
        return check.name(name, "tool_name")
    except InvalidInputError:
        return repr(name)[: MAX_NAME_LENGTH - 3] + "..."


def _truncate(text: str, max_bytes: int, note: str) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    suffix = f"\n[truncated from {len(encoded)} bytes: {note}]"
    return encoded[: max_bytes - len(suffix.encode())].decode("utf-8", "ignore") + suffix
