"""MessagesRepository.search on both backends (a bounded scan: neither has a text index; on
mongoeco's wire server, ``make test-mongoeco``, the text index), and a server that refuses
``$text`` although told it has a text index (the scan then)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agents_core.db import (
    InvalidInputError,
    MessagesRepository,
    SessionsRepository,
    default_connection,
    get_database,
)
from agents_core.db.documents import utcnow
from agents_core.db.repositories import search as search_module
from tests.helpers import make_session
from tests.recorded import SCRIPT

pytestmark = pytest.mark.usefixtures("backend")


async def seeded() -> dict[str, object]:
    messages = MessagesRepository()
    mine = await make_session("Refunds", user_id="u-1")
    other = await make_session("Other", user_id="u-2")
    await messages.create(mine.id, "user", "I would like a REFUND for order 12")
    await messages.create(mine.id, "assistant", "A refund\n  for order 12 is on its way.")
    await messages.create(other.id, "user", f"refund? {SCRIPT} (.*) $where")
    await messages.create(other.id, "user", "nothing to see")
    return {"mine": mine, "other": other}


async def test_a_phrase_is_found_newest_first_case_and_space_insensitive() -> None:
    data = await seeded()
    indexed = default_connection().text_search
    found = await MessagesRepository().search("refund for  order")
    assert found.method == ("text-index" if indexed else "scan")
    assert [(h.session_id, h.seq) for h in found.hits] == [
        (data["mine"].id, 2),  # type: ignore[attr-defined]
        (data["mine"].id, 1),  # type: ignore[attr-defined]
    ]
    hit = found.hits[0]
    assert hit.excerpt == "A refund for order 12 is on its way."
    assert hit.excerpt[hit.start : hit.end] == "refund for order"
    assert (hit.session_title, hit.user_id, hit.role.value) == ("Refunds", "u-1", "assistant")
    assert (found.scanned is None) == indexed
    assert found.searched_since is None


@pytest.mark.parametrize("phrase", ["(.*)", "$where", SCRIPT, ".*", "[", "\\"])
async def test_a_phrase_is_text_never_a_pattern_or_an_operator(phrase: str) -> None:
    await seeded()
    found = await MessagesRepository().search(phrase)
    expected = {"(.*)": 1, "$where": 1, SCRIPT: 1, ".*": 1, "[": 0, "\\": 0}[phrase]
    assert len(found.hits) == expected
    for hit in found.hits:
        assert phrase.casefold() in hit.excerpt.casefold()


async def test_scoped_by_user_and_time() -> None:
    data = await seeded()
    repo = MessagesRepository()
    assert {h.user_id for h in (await repo.search("refund", user_id="u-2")).hits} == {"u-2"}
    assert (await repo.search("refund", user_id="nobody")).hits == []
    later = utcnow() + timedelta(hours=1)
    assert (await repo.search("refund", since=later)).hits == []
    assert len((await repo.search("refund", until=later)).hits) == 3
    assert (await repo.search("refund", until=utcnow() - timedelta(days=1))).hits == []
    del data


async def test_only_what_readers_show() -> None:
    data = await seeded()
    sessions, messages = SessionsRepository(), MessagesRepository()
    await messages.pop_last(data["other"].id)  # type: ignore[attr-defined]
    await sessions.delete(data["other"].id)  # type: ignore[attr-defined]
    await get_database()["sessions"].update_one(
        {"_id": data["mine"].id},  # type: ignore[attr-defined]
        {"$set": {"cleared_through_seq": 1}},
    )
    found = await messages.search("refund")
    assert [(h.seq, h.session_title) for h in found.hits] == [(2, "Refunds")]


@pytest.mark.parametrize(
    ("phrase", "options"),
    [
        ("", {}),
        ("   ", {}),
        ("x" * 201, {}),
        (7, {}),
        ("\ud83d", {}),
        ("a", {"limit": 0}),
        ("a", {"since": "yesterday"}),
        ("a", {"since": utcnow(), "until": utcnow() - timedelta(days=1)}),
        ("a", {"user_id": ""}),
    ],
)
async def test_garbage_is_refused(phrase: object, options: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        await MessagesRepository().search(phrase, **options)  # type: ignore[arg-type]


async def test_the_scan_is_bounded_and_says_from_when(monkeypatch: pytest.MonkeyPatch) -> None:
    session = await make_session("Many")
    now = utcnow()
    await get_database()["messages"].insert_many(
        [
            {
                "session_id": session.id,
                "seq": n,
                "role": "user",
                "content": f"refund {n}",
                "created_at": now - timedelta(hours=n),
            }
            for n in range(1, 41)
        ]
    )
    await get_database()["sessions"].update_one({"_id": session.id}, {"$set": {"last_seq": 40}})
    default_connection().text_search = False  # the scan, whatever the server
    monkeypatch.setattr(search_module, "MAX_SCANNED", 10)
    found = await MessagesRepository().search("refund", limit=30)
    assert found.searched_since is not None
    assert found.scanned is not None
    assert found.scanned <= 10
    assert found.hits
    assert all(hit.created_at >= found.searched_since for hit in found.hits)
    monkeypatch.setattr(search_module, "MAX_SCANNED", 1_000)
    whole = await MessagesRepository().search("refund", limit=30)
    assert (len(whole.hits), whole.searched_since) == (30, None)


async def test_a_server_that_refuses_text_falls_back_to_the_scan() -> None:
    await seeded()
    connection = default_connection()
    connection.text_search = True  # as on MongoDB: the server answers that $text cannot run
    if "content_text" in await get_database()["messages"].index_information():
        await get_database()["messages"].drop_index("content_text")  # a server with one
    found = await MessagesRepository().search("refund")
    assert found.method == "scan"
    assert len(found.hits) == 3
    assert connection.text_search is False


async def test_the_search_page_and_its_api() -> None:
    import httpx

    from agents_core.trace.web import create_app
    from tests.test_web import esc

    data = await seeded()
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        api = (await http.get("/api/search", params={"q": "refund", "user": "u-1"})).json()
        assert api["method"] == ("text-index" if default_connection().text_search else "scan")
        assert [hit["seq"] for hit in api["hits"]] == [2, 1]
        assert api["hits"][0]["session_id"] == str(data["mine"].id)  # type: ignore[attr-defined]
        page = await http.get("/search", params={"q": "refund?"})
        assert page.status_code == 200
        assert SCRIPT not in page.text
        assert esc(SCRIPT) in page.text
        assert "<mark>refund?</mark>" in page.text
        assert "text index" in page.text
        assert ("no text index" in page.text) != (default_connection().text_search)
        assert (await http.get("/search")).status_code == 200  # the form alone
        for params in ({"q": "x" * 201}, {"q": "a", "since": "2026-02-30"}, {}):
            assert (await http.get("/api/search", params=params)).status_code == 400
