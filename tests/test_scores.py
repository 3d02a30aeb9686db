"""Scores of runs (``RunsRepository.add_score``) on both backends, and every view of them: the
``score`` and ``show`` commands, the OpenTelemetry export and the trace view."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime
from typing import Any

import bson
import httpx
import pytest
from bson import ObjectId

from agents_core.cli.score import number_or_label
from agents_core.db import (
    CorruptDocumentError,
    InvalidIdError,
    InvalidInputError,
    NotFoundError,
    Run,
    RunsRepository,
    Score,
    get_database,
)
from agents_core.db.limits import MAX_NAME_LENGTH, MAX_SCORE_COMMENT_BYTES, MAX_SCORES_PER_RUN
from agents_core.trace import format_score
from agents_core.trace.otel import EVALUATION_EVENT
from tests.helpers import Clock, make_run
from tests.recorded import EVALUATED, MARKUP, SCRIPT, TEMPLATE
from tests.test_cli import Wire, invoke, wire  # noqa: F401  (a fixture)
from tests.test_otel import by_name, ns, spans_of
from tests.test_web import client, esc, ok  # noqa: F401  (a fixture)

runs = RunsRepository()
NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def stored(run: Run) -> bytes:
    """The run's document as BSON bytes: what a refused call must leave as it was."""
    raw = await get_database()["runs"].find_one({"_id": run.id})
    assert raw is not None
    return bson.encode(raw)


# --- the repository, on both backends -------------------------------------------------------


@pytest.mark.usefixtures("backend")
async def test_scores_are_kept_in_the_order_they_were_added(clock: Clock) -> None:
    run = await make_run()
    # One millisecond for all of them: the order is the array's, never the clock's.
    added = [
        await runs.add_score(run.id, "helpfulness", 0.85, comment="clear\nand short", by="alice"),
        await runs.add_score(str(run.id), "verdict", "pass", by="judge-v2"),
        await runs.add_score(run.id, "stars", 4),
        await runs.add_score(run.id, "regression", -1e-3),
        await runs.add_score(run.id, "verdict", "fail"),  # a name may come again
    ]
    assert len({score.created_at for score in added}) == 1
    assert [(s.name, s.value, s.label) for s in added] == [
        ("helpfulness", 0.85, None),
        ("verdict", None, "pass"),
        ("stars", 4.0, None),
        ("regression", -1e-3, None),
        ("verdict", None, "fail"),
    ]
    assert isinstance(added[2].value, float)
    assert (added[0].comment, added[0].by, added[2].comment, added[2].by) == (
        "clear\nand short",
        "alice",
        None,
        None,
    )
    assert len({score.id for score in added}) == 5
    found = await runs.find_by_id(run.id)
    assert found.scores == added
    (listed,) = await runs.list_by_session(run.session_id)
    assert listed.scores == added


@pytest.mark.usefixtures("backend")
async def test_a_finished_run_is_scored_and_stays_finished() -> None:
    run = await make_run()
    done = await runs.complete(run.id, "failed", "timeout")
    score = await runs.add_score(run.id, "resolved", "no", comment="the user gave up")
    found = await runs.find_by_id(run.id)
    assert found.scores == [score]
    assert found.model_dump(exclude={"scores"}) == done.model_dump(exclude={"scores"})


@pytest.mark.usefixtures("backend")
async def test_a_retried_add_adds_nothing_and_returns_the_score_stored(clock: Clock) -> None:
    run = await make_run()
    first = await runs.add_score(run.id, "accuracy", 0.5, by="eval", score_id="eval-7:run")
    clock.advance()
    again = await runs.add_score(run.id, "accuracy", 0.5, by="eval", score_id="eval-7:run")
    assert again == first  # its time too: the first add's
    other = await runs.add_score(run.id, "accuracy", 0.5, by="eval", score_id="eval-8:run")
    assert other.created_at > first.created_at
    assert [s.id for s in (await runs.find_by_id(run.id)).scores] == ["eval-7:run", "eval-8:run"]
    # The same id with another score is a mistake, never a silent success.
    before = await stored(run)
    for changed in (
        {"value": 0.6},
        {"value": "0.5"},
        {"name": "precision"},
        {"by": "someone else"},
        {"comment": "why"},
    ):
        fields: dict[str, Any] = {"name": "accuracy", "value": 0.5, "by": "eval"} | changed
        with pytest.raises(InvalidInputError) as info:
            await runs.add_score(
                run.id,
                fields["name"],
                fields["value"],
                by=fields["by"],
                comment=fields.get("comment"),
                score_id="eval-7:run",
            )
        assert info.value.field == "score_id"
    assert await stored(run) == before


@pytest.mark.usefixtures("backend")
async def test_concurrent_adds_each_land_once() -> None:
    run = await make_run()
    distinct = await asyncio.gather(
        *(runs.add_score(run.id, "n", n, score_id=f"s{n}") for n in range(10))
    )
    repeated = await asyncio.gather(
        *(runs.add_score(run.id, "same", "x", score_id="one") for _ in range(10))
    )
    assert [score.id for score in distinct] == [f"s{n}" for n in range(10)]
    assert len({(score.id, score.created_at) for score in repeated}) == 1
    scores = (await runs.find_by_id(run.id)).scores
    assert sorted(s.id for s in scores) == sorted([f"s{n}" for n in range(10)] + ["one"])
    assert [s.value for s in scores if s.name == "n"] == [
        float(s.id[1:]) for s in scores if s.name == "n"
    ]


@pytest.mark.usefixtures("backend")
async def test_a_run_holds_at_most_max_scores() -> None:
    run = await make_run()
    for n in range(MAX_SCORES_PER_RUN):
        await runs.add_score(run.id, "n", n, score_id=f"s{n}")
    before = await stored(run)
    with pytest.raises(InvalidInputError) as info:
        await runs.add_score(run.id, "one", "too many")
    assert info.value.field == "scores"
    assert str(MAX_SCORES_PER_RUN) in info.value.reason
    assert await stored(run) == before
    # A retry of one that landed is still no error on a full run.
    again = await runs.add_score(run.id, "n", 0, score_id="s0")
    assert (again.id, again.value) == ("s0", 0.0)
    scores = (await runs.find_by_id(run.id)).scores
    assert [s.value for s in scores] == [float(n) for n in range(MAX_SCORES_PER_RUN)]
    assert await stored(run) == before


BAD_SCORES = [
    pytest.param({"name": ""}, "name", id="name-empty"),
    pytest.param({"name": " \u200b "}, "name", id="name-blank"),
    pytest.param({"name": "a\nb"}, "name", id="name-newline"),
    pytest.param({"name": "n" * (MAX_NAME_LENGTH + 1)}, "name", id="name-too-long"),
    pytest.param({"name": {"$ne": None}}, "name", id="name-operator"),
    pytest.param({"name": None}, "name", id="name-none"),
    pytest.param({"value": math.nan}, "value", id="value-nan"),
    pytest.param({"value": math.inf}, "value", id="value-inf"),
    pytest.param({"value": -math.inf}, "value", id="value-minus-inf"),
    pytest.param({"value": 10**400}, "value", id="value-beyond-a-double"),
    pytest.param({"value": True}, "value", id="value-bool"),
    pytest.param({"value": None}, "value", id="value-none"),
    pytest.param({"value": {"$gt": 0}}, "value", id="value-operator"),
    pytest.param({"value": b"0.5"}, "value", id="value-bytes"),
    pytest.param({"value": ""}, "value", id="label-empty"),
    pytest.param({"value": "l" * (MAX_NAME_LENGTH + 1)}, "value", id="label-too-long"),
    pytest.param({"value": "pass\r\nfail"}, "value", id="label-newline"),
    pytest.param(
        {"comment": "c" * (MAX_SCORE_COMMENT_BYTES + 1)}, "comment", id="comment-too-large"
    ),
    pytest.param(
        {"comment": "é" * (MAX_SCORE_COMMENT_BYTES // 2 + 1)},
        "comment",
        id="comment-too-large-in-utf8",
    ),
    pytest.param({"comment": "half \ud800 a pair"}, "comment", id="comment-lone-surrogate"),
    pytest.param({"comment": 3}, "comment", id="comment-not-text"),
    pytest.param({"by": ""}, "by", id="by-empty"),
    pytest.param({"by": "x" * (MAX_NAME_LENGTH + 1)}, "by", id="by-too-long"),
    pytest.param({"by": {"$exists": True}}, "by", id="by-operator"),
    pytest.param({"score_id": ""}, "score_id", id="id-empty"),
    pytest.param({"score_id": {"$ne": "x"}}, "score_id", id="id-operator"),
]


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize(("bad", "field"), BAD_SCORES)
async def test_garbage_is_refused_and_writes_nothing(bad: dict[str, Any], field: str) -> None:
    run = await make_run()
    await runs.add_score(run.id, "kept", 1)
    before = await stored(run)
    given: dict[str, Any] = {"name": "quality", "value": 0.5} | bad
    name, value = given.pop("name"), given.pop("value")
    with pytest.raises(InvalidInputError) as info:
        await runs.add_score(run.id, name, value, **given)
    assert info.value.field == field
    assert await stored(run) == before


@pytest.mark.usefixtures("backend")
async def test_a_comment_at_its_limit_is_kept_whole() -> None:
    run = await make_run()
    comment = "é" * (MAX_SCORE_COMMENT_BYTES // 2)
    name = "n" * MAX_NAME_LENGTH
    score = await runs.add_score(run.id, name, "l" * MAX_NAME_LENGTH, comment=comment)
    assert (await runs.find_by_id(run.id)).scores == [score]
    assert (score.name, score.comment) == (name, comment)


@pytest.mark.usefixtures("backend")
async def test_an_unknown_or_malformed_run_is_refused() -> None:
    with pytest.raises(NotFoundError) as info:
        await runs.add_score(ObjectId(), "quality", 1)
    assert info.value.entity == "run"
    with pytest.raises(InvalidIdError):
        await runs.add_score("not-an-id", "quality", 1)
    with pytest.raises(InvalidIdError):
        await runs.add_score({"$ne": None}, "quality", 1)  # type: ignore[arg-type]
    assert await get_database()["runs"].count_documents({}) == 0


@pytest.mark.usefixtures("backend")
async def test_a_run_stored_before_scores_existed() -> None:
    run = await make_run()
    await get_database()["runs"].update_one({"_id": run.id}, {"$unset": {"scores": ""}})
    assert (await runs.find_by_id(run.id)).scores == []
    score = await runs.add_score(run.id, "quality", 2)
    assert (await runs.find_by_id(run.id)).scores == [score]


@pytest.mark.usefixtures("backend")
async def test_a_stored_score_with_a_value_and_a_label_is_corrupt() -> None:
    run = await make_run()
    score = await runs.add_score(run.id, "quality", 2)
    await get_database()["runs"].update_one(
        {"_id": run.id}, {"$set": {"scores.0.label": "and a label"}}
    )
    with pytest.raises(CorruptDocumentError) as info:
        await runs.find_by_id(run.id)
    assert info.value.id == run.id
    assert "scores.0" in info.value.reason
    # A retry of it reads the run's scores: the corrupt one is reported there too.
    with pytest.raises(CorruptDocumentError):
        await runs.add_score(run.id, "quality", 2, score_id=score.id)


def test_a_score_is_a_value_or_a_label() -> None:
    common: dict[str, Any] = {"id": "s", "name": "n", "created_at": NOW.isoformat()}
    assert Score.model_validate_json(json.dumps(common | {"value": 1})).value == 1.0
    for wrong in ({}, {"value": 1, "label": "x"}):
        with pytest.raises(ValueError, match="a value or a label"):
            Score.model_validate_json(json.dumps(common | wrong))
    with pytest.raises(ValueError, match="finite"):
        Score.model_validate(common | {"value": math.inf})


def test_a_score_is_printed_as_written() -> None:
    def shown(value: float | str) -> str:
        given = {"label": value} if isinstance(value, str) else {"value": value}
        return format_score(
            Score.model_validate({"id": "s", "name": "n", "created_at": NOW, **given})
        )

    assert [shown(v) for v in (4, 4.0, -1, 0.85, 1e-7, 1e300, 2.0**53, "pass")] == [
        "4",
        "4",
        "-1",
        "0.85",
        "1e-07",
        "1e+300",
        "9007199254740992.0",
        "pass",
    ]


def test_the_command_line_value_is_a_number_or_a_label() -> None:
    assert [number_or_label(v) for v in ("0.8", "4", "-1e3", " 2 ")] == [0.8, 4.0, -1000.0, 2.0]
    assert [number_or_label(v) for v in ("pass", "nan", "inf", "-Infinity", "1/2", "")] == [
        "pass",
        "nan",
        "inf",
        "-Infinity",
        "1/2",
        "",
    ]


# --- the OpenTelemetry export ---------------------------------------------------------------


@pytest.mark.usefixtures("backend")
async def test_scores_are_evaluation_events_on_the_runs_span(clock: Clock) -> None:
    run = await make_run()
    await runs.complete(run.id, "completed")
    first = await runs.add_score(run.id, "helpfulness", 0.85, comment="clear", by="alice")
    clock.advance(1500)
    second = await runs.add_score(run.id, "verdict", "pass")
    spans = spans_of(await runs.find_by_id(run.id))
    (root,) = by_name(spans)["invoke_agent demo-assistant"]
    assert [event.name for event in root.events] == [EVALUATION_EVENT] * 2
    assert [event.timestamp for event in root.events] == [
        ns(first.created_at),
        ns(second.created_at),
    ]
    assert [dict(event.attributes or {}) for event in root.events] == [
        {
            "gen_ai.evaluation.name": "helpfulness",
            "gen_ai.evaluation.score.value": 0.85,
            "gen_ai.evaluation.explanation": "clear",
            "agents_core.score.id": first.id,
            "agents_core.score.by": "alice",
        },
        {
            "gen_ai.evaluation.name": "verdict",
            "gen_ai.evaluation.score.label": "pass",
            "agents_core.score.id": second.id,
        },
    ]
    # A run without scores has no events; the other spans never carry them.
    assert all(not span.events for span in spans if span is not root)
    (bare,) = spans_of(await make_run())
    assert list(bare.events) == []


# --- the trace view -------------------------------------------------------------------------


HOSTILE = f"{SCRIPT} {TEMPLATE} {MARKUP}"


async def test_the_run_page_shows_the_scores_as_text(client: httpx.AsyncClient) -> None:  # noqa: F811
    run = await make_run()
    empty = (await ok(client, f"/runs/{run.id}")).text
    assert 'id="scores"' not in empty
    assert "None given" in empty
    short = SCRIPT[: MAX_NAME_LENGTH - 10]
    added = [
        await runs.add_score(run.id, "helpfulness", 0.85, comment="clear", by="alice"),
        await runs.add_score(run.id, short, short, comment=f"why: {HOSTILE}", by=short),
        await runs.add_score(run.id, "stars", 4),
    ]
    page = (await ok(client, f"/runs/{run.id}")).text
    assert page.count('class="score-row"') == 3
    table = page[page.index('id="scores"') :]
    table = table[: table.index("</table>")]
    rows = table.split('class="score-row"')[1:]
    assert all(esc(score.name) in row for row, score in zip(rows, added, strict=True))
    for text in (">0.85<", esc("clear"), "alice"):
        assert text in rows[0]
    assert ">4<" in rows[2]
    assert esc(f"why: {HOSTILE}") in rows[1]
    assert esc(short) in rows[1]
    assert "<script>" not in page
    assert EVALUATED not in page
    assert added[0].created_at.strftime("%Y-%m-%d %H:%M:%S") in rows[0]
    data = (await ok(client, f"/api/runs/{run.id}")).json()
    assert data["scores"] == [score.model_dump(mode="json") for score in added]
    assert data["scores"][1]["comment"] == f"why: {HOSTILE}"


# --- the command line, on the wire server ----------------------------------------------------


def test_the_score_command_and_show(wire: Wire) -> None:  # noqa: F811
    run = wire.run(make_run)
    rid = str(run.id)
    given = invoke(
        "score", rid[:20], "helpfulness", "0.85", "--comment", "[bold]ok[/]", "--by", "alice"
    )
    assert given.exit_code == 0, given.output
    assert f"scored run {rid}: helpfulness 0.85 by alice" in given.output
    labelled = json.loads(invoke("score", rid, "verdict", "pass", "--json").output)
    assert labelled["run_id"] == rid
    assert (labelled["score"]["label"], labelled["score"]["value"]) == ("pass", None)
    assert json.loads(invoke("score", rid, "stars", "4", "--json").output)["score"]["value"] == 4.0
    assert (
        json.loads(invoke("score", rid, "odd", "nan", "--json").output)["score"]["label"] == "nan"
    )
    stored_scores = wire.run(lambda: RunsRepository().find_by_id(rid)).scores
    assert [(s.name, format_score(s)) for s in stored_scores] == [
        ("helpfulness", "0.85"),
        ("verdict", "pass"),
        ("stars", "4"),
        ("odd", "nan"),
    ]
    shown = invoke("show", rid)
    assert shown.exit_code == 0, shown.output
    listing = shown.output[shown.output.index("Scores") :]
    for text in ("helpfulness", "0.85", "alice", "[bold]ok[/]", "verdict", "pass", "stars"):
        assert text in listing
    assert [s["id"] for s in json.loads(invoke("show", rid, "--json").output)["run"]["scores"]] == [
        s.id for s in stored_scores
    ]
    # Refused: a malformed id before any server is asked (2), what the layer refuses (1).
    assert invoke("score", "nope", "n", "1").exit_code == 2
    blank = invoke("score", rid, " ", "1", "--json")
    assert blank.exit_code == 1
    assert json.loads(blank.stderr)["error"] == "invalid name: must not be empty or blank"
    missing = invoke("score", "f" * 24, "n", "1")
    assert missing.exit_code == 1
    assert f"run {'f' * 24} not found" in missing.output
    assert len(wire.run(lambda: RunsRepository().find_by_id(rid)).scores) == 4
