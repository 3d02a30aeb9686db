"""Ids a person can type (issue 23): tables print the end of each recent id, as short as keeps
it apart from every other recent session and run (6 hex digits at least); that end, or the
start of an id, names it in every command that takes one; more than one match is one line
that names them. On the wire server, a fresh database per test (``tests.test_cli.wire``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bson import ObjectId

from agents_core.db import (
    AgentsRepository,
    CreateAgentDTO,
    RunsRepository,
    SessionsRepository,
    default_connection,
    get_database,
)
from agents_core.db.documents import utcnow
from tests.test_cli import Wire, invoke, wire  # noqa: F401  (a fixture)


@dataclass
class Seeded:
    #: Session ids by name; "twin-a" and "twin-b" share their last 7 digits, "coffee" its last
    #: 6 with the run "coffee-run".
    sessions: dict[str, str]
    runs: dict[str, str]
    agent: str


def with_end(id: ObjectId, end: str) -> ObjectId:
    """``id`` with its last digits replaced by ``end``: its time and process stay."""
    text = str(id)
    return ObjectId(text[: 24 - len(end)] + end)


async def _copy(collection: str, raw: dict[str, Any], id: ObjectId) -> str:
    await get_database()[collection].insert_one({**raw, "_id": id})
    return str(id)


def seed(wire: Wire) -> Seeded:  # noqa: F811
    async def work() -> Seeded:
        agent = await AgentsRepository().create(CreateAgentDTO(name="typist", tools=["t"]))
        sessions, runs = SessionsRepository(), RunsRepository()
        plain = await sessions.create("plain")
        other = await sessions.create("other")
        first = await runs.create(plain.id, agent.id)
        second = await runs.create(plain.id, agent.id)
        raw_session = await get_database()["sessions"].find_one({"_id": other.id})
        raw_run = await get_database()["runs"].find_one({"_id": first.id})
        assert raw_session is not None
        assert raw_run is not None
        made = {
            "plain": str(plain.id),
            "other": str(other.id),
            "twin-a": await _copy("sessions", raw_session, with_end(other.id, "a1234567")),
            "twin-b": await _copy("sessions", raw_session, with_end(other.id, "b1234567")),
            "coffee": await _copy("sessions", raw_session, with_end(other.id, "1c0ffee")),
        }
        run_ids = {
            "first": str(first.id),
            "second": str(second.id),
            "coffee-run": await _copy("runs", raw_run, with_end(first.id, "2c0ffee")),
        }
        return Seeded(made, run_ids, str(agent.id))

    return wire.run(work)


def cells(output: str) -> set[str]:
    """Every cell of the tables in ``output``, stripped."""
    return {cell.strip() for line in output.splitlines() for cell in line.split("│")[1:-1]}


def one_line_error(result: Any) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    line: str = lines[0]
    return line


def test_tables_print_the_shortest_end_and_each_names_its_id(wire: Wire) -> None:  # noqa: F811
    seeded = seed(wire)
    listed = invoke("sessions")
    assert listed.exit_code == 0, listed.output
    forms = {
        "plain": seeded.sessions["plain"][-6:],
        "other": seeded.sessions["other"][-6:],
        "twin-a": "a1234567",  # 7 digits are shared with twin-b: the 8th tells them apart
        "twin-b": "b1234567",
        "coffee": "1c0ffee",  # 6 are shared with a run: show takes either
    }
    for name, id in seeded.sessions.items():
        assert id not in listed.output, name  # not whole
        assert forms[name] in cells(listed.output), (name, listed.output)
    assert seeded.agent[-6:] in cells(invoke("agents").output)
    # Every form printed names its own session, typed back to any command that takes one.
    for name, form in forms.items():
        shown = invoke("show", form, "--json")
        assert shown.exit_code == 0, (name, shown.output)
        assert json.loads(shown.output)["session"]["id"] == seeded.sessions[name]
    # --json prints ids whole.
    assert {s["id"] for s in json.loads(invoke("sessions", "--json").output)} == set(
        seeded.sessions.values()
    )
    # The runs of a session, and the turn of a run, print their runs' ends too.
    runs = invoke("runs", forms["plain"])
    assert runs.exit_code == 0, runs.output
    for name in ("first", "second"):
        assert f"Run {seeded.runs[name][-6:]} " in runs.output
    shown = invoke("show", seeded.runs["second"][-6:], "--json")
    assert json.loads(shown.output)["run"]["id"] == seeded.runs["second"]
    deleted = invoke("delete", forms["twin-b"])
    assert deleted.exit_code == 0, deleted.output
    assert f"deleted session {seeded.sessions['twin-b']}" in deleted.output
    # Its twin alone ends so now: 6 digits are enough again.
    assert "234567" in cells(invoke("sessions").output)


def test_an_end_that_several_ids_share_is_one_line_naming_them(wire: Wire) -> None:  # noqa: F811
    seeded = seed(wire)
    twins = one_line_error(invoke("show", "1234567"))
    assert "1234567 is ambiguous: session a1234567, session b1234567 end with it" in twins
    assert "give more of the id" in twins
    across = one_line_error(invoke("show", "c0ffee"))
    assert "session 1c0ffee, run 2c0ffee end with it" in across
    # A command that takes one kind only matches that kind.
    runs = invoke("runs", "c0ffee", "--json")
    assert runs.exit_code == 0, runs.output
    scored = invoke("score", "c0ffee", "quality", "0.5", "--json")
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output)["run_id"] == seeded.runs["coffee-run"]
    # Under --json, the error is JSON on stderr.
    refused = invoke("show", "c0ffee", "--json")
    assert refused.exit_code == 1
    assert "is ambiguous" in json.loads(refused.stderr)["error"]
    # An end shared by many: a few are named, and how many more.

    async def two_more() -> None:
        raw = await get_database()["sessions"].find_one({"_id": ObjectId(seeded.sessions["other"])})
        assert raw is not None
        for end in ("c1234567", "d1234567"):
            await _copy("sessions", raw, with_end(raw["_id"], end))

    wire.run(two_more)
    many = one_line_error(invoke("show", "234567"))
    assert "234567 is ambiguous: session " in many
    assert many.count("session ") == 3
    assert many.endswith("and 1 more end with it; give more of the id")


def test_the_start_of_an_id_still_names_it(wire: Wire) -> None:  # noqa: F811
    seeded = seed(wire)
    plain, first = seeded.sessions["plain"], seeded.runs["first"]
    # Made by one process within a second: only the counter (the last 6 digits) differs.
    start = next(
        plain[:n]
        for n in range(1, 25)
        if not any(
            id.startswith(plain[:n])
            for id in [*seeded.sessions.values(), *seeded.runs.values()]
            if id != plain
        )
    )
    shown = invoke("show", start, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["session"]["id"] == plain
    shared = one_line_error(invoke("show", plain[:10]))
    assert "start with it" in shared
    missing = one_line_error(invoke("show", "f" * 12))
    assert "no recent session or run id ends with ffffffffffff, and none starts with it" in missing
    assert json.loads(invoke("show", first, "--json").output)["run"]["id"] == first


def test_an_id_beyond_the_recent_ones_is_printed_whole(wire: Wire) -> None:  # noqa: F811
    """A session idle for three years is beyond the windows SecantusDB's read of the recent
    ids goes back (about two years): it prints whole, and its whole id or start names it.
    MongoDB reads the newest 500 whatever their age: there it is recent like the others."""
    seeded = seed(wire)
    old = seeded.sessions["other"]

    async def age() -> bool:
        await get_database()["sessions"].update_one(
            {"_id": ObjectId(old)}, {"$set": {"updated_at": utcnow() - timedelta(days=3 * 365)}}
        )
        return default_connection().profile.windowed_listings

    windowed = wire.run(age)
    listed = invoke("sessions").output
    assert (old in listed) == windowed
    assert (old[-6:] in cells(listed)) == (not windowed)
    assert json.loads(invoke("show", old, "--json").output)["session"]["id"] == old
    typed = invoke("show", old[-6:], "--json")
    assert typed.exit_code == (1 if windowed else 0), typed.output
