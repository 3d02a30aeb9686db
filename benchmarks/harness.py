"""What one benchmark is (an ``Op``: a repository call and its raw twin) and how it is measured.

Two passes, on two clients of the same server and database:

- ``count_commands``: a few calls of each side on a client with a ``CommandListener``, which
  gives the commands per call and checks that both sides return the same thing.
- ``time_op``: ``rounds`` rounds on a client without listeners (so the cost of publishing
  monitoring events is in neither figure); each round runs a batch of ``calls`` calls of one side
  and then of the other, alternating which goes first. Client CPU is ``time.process_time`` of
  this process only (the server is another process). The result is the median per call of
  each side, and the CPU ratio is the median of the rounds' ratios (each round's repository
  batch over the raw batch run next to it): the machine's speed drifts between rounds (the same
  raw read took 2.9 ms in one run and 1.7 ms in the next here), and a pair shares the drift.
"""

from __future__ import annotations

import cProfile
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel

from agents_core.db import Agent, Message, Run, Session, ToolCall
from agents_core.db.documents import DOCUMENT_MODELS
from agents_core.testing.commands import CommandCounter
from benchmarks.raw import RawLayer

__all__ = [
    "COUNTED_CALLS",
    "CommandCounter",
    "Counts",
    "Op",
    "Timed",
    "Timing",
    "count_commands",
    "profile_op",
    "time_op",
]


async def _none(raw: RawLayer, calls: int) -> Sequence[Any]:
    return [None] * calls


@dataclass(frozen=True, slots=True)
class Op:
    """One hot path: ``repo(arg)`` and ``raw(raw_layer, arg)`` do the same logical work.

    ``prepare(raw_layer, calls)`` makes one argument per call before a batch, untimed (e.g. a
    run reset to ``running`` for each ``complete``); without it the argument is ``None`` and the
    callables use the fixtures they close over. ``check`` says how the two results must agree:
    ``"equal"`` for reads, ``"shape"`` (the same keys) for writes, whose ids and times differ.
    ``explain`` is the find command whose documents examined the server should report.
    ``batch`` scales the calls per batch, for ops that take much longer than one round trip.
    """

    name: str
    repo: Callable[[Any], Awaitable[object]]
    raw: Callable[[RawLayer, Any], Awaitable[object]]
    prepare: Callable[[RawLayer, int], Awaitable[Sequence[Any]]] = _none
    check: Literal["equal", "shape"] = "shape"
    detail: str = ""
    explain: dict[str, Any] | None = None
    batch: float = 1.0

    @property
    def label(self) -> str:
        return f"{self.name} [{self.detail}]" if self.detail else self.name

    def sides(self, raw: RawLayer) -> tuple[Callable[[Any], Awaitable[object]], ...]:
        """The repository side and the raw side, as callables of the prepared argument."""
        return self.repo, lambda arg: self.raw(raw, arg)


@dataclass(frozen=True, slots=True)
class Counts:
    commands: float
    names: tuple[str, ...]  # of the first call


@dataclass(frozen=True, slots=True)
class Timing:
    cpu_us: float
    wall_us: float


#: Calls of each side in the counting pass.
COUNTED_CALLS = 2


async def count_commands(
    op: Op, raw: RawLayer, counter: CommandCounter, calls: int = COUNTED_CALLS
) -> tuple[Counts, Counts]:
    """Commands per call of each side; raises ``AssertionError`` if their results differ."""
    counts: list[Counts] = []
    firsts: list[object] = []
    for side in op.sides(raw):
        per_call: list[list[str]] = []
        for arg in await op.prepare(raw, calls):
            with counter.recording() as names:
                result = await side(arg)
            per_call.append(names)
            if len(per_call) == 1:
                firsts.append(result)
        commands = statistics.fmean(len(names) for names in per_call)
        counts.append(Counts(commands, tuple(per_call[0])))
    _check_equivalent(op, *firsts)
    return counts[0], counts[1]


@dataclass(frozen=True, slots=True)
class Timed:
    """Both sides of one op: their median timings, and the median of the per-round CPU ratios
    (each round's repository batch over the raw batch run next to it)."""

    repo: Timing
    raw: Timing
    cpu_ratio: float


async def time_op(op: Op, raw: RawLayer, *, rounds: int, calls: int, warmup: int) -> Timed:
    """Median client CPU and wall time per call of each side, and their paired CPU ratio."""
    sides = op.sides(raw)
    calls = max(1, round(calls * op.batch))
    samples: list[list[tuple[float, float]]] = [[] for _ in sides]
    for number in range(warmup + rounds):
        order = range(len(sides)) if number % 2 == 0 else reversed(range(len(sides)))
        for index in order:
            sample = await _batch(sides[index], await op.prepare(raw, calls))
            if number >= warmup:
                samples[index].append(sample)
    repo, raw_side = (
        Timing(
            cpu_us=statistics.median(cpu for cpu, _ in side),
            wall_us=statistics.median(wall for _, wall in side),
        )
        for side in samples
    )
    ratios = [ours[0] / theirs[0] for ours, theirs in zip(*samples, strict=True)]
    return Timed(repo, raw_side, statistics.median(ratios))


async def profile_op(op: Op, raw: RawLayer, calls: int) -> cProfile.Profile:
    """A cProfile of ``calls`` calls of the repository side (event loop and driver included)."""
    args = await op.prepare(raw, calls)
    profile = cProfile.Profile()
    profile.enable()
    for arg in args:
        await op.repo(arg)
    profile.disable()
    return profile


async def _batch(
    side: Callable[[Any], Awaitable[object]], args: Sequence[Any]
) -> tuple[float, float]:
    cpu, wall = time.process_time_ns(), time.perf_counter_ns()
    for arg in args:
        await side(arg)
    cpu, wall = time.process_time_ns() - cpu, time.perf_counter_ns() - wall
    return cpu / len(args) / 1_000, wall / len(args) / 1_000


def _check_equivalent(op: Op, repo_result: object, raw_result: object) -> None:
    repo, raw = _plain(repo_result), _plain(raw_result)
    if op.check == "shape":
        repo, raw = _keys(repo), _keys(raw)
    if repo != raw:
        raise AssertionError(
            f"{op.label}: the raw side does not return what the repository does:\n{repo}\n{raw}"
        )


#: Stored fields that records do not show (``RunDocument.inline_bytes``, …): not compared.
_LAYER_ONLY = frozenset(
    name for document in DOCUMENT_MODELS for name in document.model_fields
) - frozenset(
    name for record in (Agent, Session, Message, Run, ToolCall) for name in record.model_fields
)


def _plain(value: object) -> object:
    """Records dumped as stored (by alias), enums as values; ``None`` fields and fields only
    the layer uses dropped."""
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True)
    if isinstance(value, dict):
        return {
            key: _plain(item)
            for key, item in value.items()
            if item is not None and key not in _LAYER_ONLY
        }
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    return value


def _keys(value: object) -> object:
    if isinstance(value, dict):
        return {key: _keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_keys(item) for item in value]
    return None
