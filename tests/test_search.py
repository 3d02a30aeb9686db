"""MessagesRepository.search on both backends (a bounded scan: neither has a text index; on
mongoeco's wire server, ``make test-mongoeco``, the text index), and a server that refuses
``$text`` although told it has a text index (the scan then)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from agents_core.db import (
    InvalidInputError,
    MessagesRepository,
    Session,
    SessionsRepository,
    default_connection,
    get_database,
)
from agents_core.db.documents import utcnow
from agents_core.db.repositories import search as search_module
from agents_core.testing.commands import CommandCounter
from tests.helpers import make_session
from tests.mock_commands import mock_commands
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


@pytest.fixture
def log(backend: str, request: pytest.FixtureRequest) -> Callable[[], Any]:
    """What records the commands of the backend: the names sent inside a ``with`` block."""
    if backend == "mock":
        return mock_commands
    counter: CommandCounter = request.getfixturevalue("command_log")
    return counter.recording


async def stored(session: Session, contents: list[str], at: list[datetime]) -> None:
    """Messages stored as they are, ``seq`` 1, 2, …, created at ``at``."""
    await get_database()["messages"].insert_many(
        [
            {"session_id": session.id, "seq": seq, "role": "user", "content": text, "created_at": t}
            for seq, (text, t) in enumerate(zip(contents, at, strict=True), start=1)
        ]
    )
    await get_database()["sessions"].update_one(
        {"_id": session.id}, {"$set": {"last_seq": len(contents), "updated_at": max(at)}}
    )


async def test_more_messages_in_a_moment_than_the_bound_are_searched_from_the_newest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A burst (an import, a busy minute) holding more than the bound: the newest ones are
    searched, and the result says from when (it found nothing at all when it counted the
    newest slice first and gave up)."""
    session = await make_session("Busy")
    now = utcnow()
    await stored(
        session, [f"refund {n}" for n in range(15)], [now - timedelta(seconds=n) for n in range(15)]
    )
    default_connection().text_search = False  # the scan, whatever the server
    monkeypatch.setattr(search_module, "MAX_SCANNED", 10)
    found = await MessagesRepository().search("refund", limit=5)
    assert [hit.seq for hit in found.hits] == [1, 2, 3, 4, 5]
    everything = await MessagesRepository().search("refund", limit=50)
    assert [hit.seq for hit in everything.hits] == list(range(1, 11))
    assert everything.scanned == 10
    assert everything.searched_since == now - timedelta(seconds=9)


async def test_the_scan_reaches_back_years_and_keeps_to_the_range() -> None:
    session = await make_session("Old")
    now = utcnow()
    ages = [timedelta(0), timedelta(days=3), timedelta(days=400), timedelta(days=5 * 365)]
    await stored(session, ["a refund"] * 4, [now - age for age in ages])
    default_connection().text_search = False
    repo = MessagesRepository()
    assert [hit.seq for hit in (await repo.search("refund")).hits] == [1, 2, 3, 4]
    ranged = await repo.search(
        "refund", since=now - timedelta(days=401), until=now - timedelta(days=3)
    )
    assert [hit.seq for hit in ranged.hits] == [2, 3]
    assert (ranged.scanned, ranged.searched_since) == (2, None)


@pytest.mark.parametrize(
    ("phrase", "found"),
    [
        ("fund", []),  # a word is whole: not inside "refund", as a text index would not find it
        ("refund", [1, 2, 3]),
        ("Refund policy", [2, 3]),
        ("refund policy.", [3]),
        ("policy, please", []),
    ],
)
async def test_a_phrase_is_whole_words_on_every_server(phrase: str, found: list[int]) -> None:
    session = await make_session("Words")
    messages = MessagesRepository()
    await messages.create(session.id, "user", "refund")
    await messages.create(session.id, "user", "the refund\tpolicy applies")
    await messages.create(session.id, "user", "Read the REFUND POLICY.")
    hits = (await messages.search(phrase)).hits
    assert sorted(hit.seq for hit in hits) == found


def test_the_text_index_is_asked_for_every_word_on_its_own() -> None:
    """Quoted phrases must all match, each as a substring of the raw text: the phrase quoted
    whole would miss "refund\\n for order"; its words each quoted find it, then the phrase is
    confirmed here."""
    phrase = search_module._phrase('  refund for\n"order"  -refund ')
    assert phrase.text == 'refund for "order" -refund'
    assert phrase.text_query == '"refund" "for" "order"'
    assert search_module._phrase("(.*)").words == ()


async def test_a_message_of_an_unfinished_batch_is_not_found() -> None:
    """A batch whose writer died before its last message (which makes it visible) is never
    shown, so never found."""
    session = await make_session("Batches")
    messages = MessagesRepository()
    await messages.append_items(
        session.id, [{"role": "user", "content": "refund one"}, {"role": "user", "content": "x"}]
    )
    now = utcnow()
    await get_database()["messages"].insert_one(
        {
            "session_id": session.id,
            "seq": 3,
            "role": "user",
            "content": "refund two",
            "created_at": now,
            "batch_end_seq": 4,  # never written
        }
    )
    await get_database()["sessions"].update_one({"_id": session.id}, {"$set": {"last_seq": 4}})
    assert [hit.seq for hit in (await messages.search("refund")).hits] == [1]


async def test_hits_are_found_past_many_matches_of_the_words_alone() -> None:
    """The text index returns every message with the words; the phrase is confirmed here, and
    the search reads on until it has its hits."""
    session = await make_session("Policy")
    messages = MessagesRepository()
    await messages.create(session.id, "user", "the refund policy")
    for n in range(8):
        await messages.create(session.id, "user", f"policy {n} and refund")
    found = await messages.search("refund policy", limit=1)
    assert [hit.seq for hit in found.hits] == [1]


async def test_matches_no_reader_sees_do_not_crowd_out_a_hit() -> None:
    """Newer matches in a session being deleted, or cleared: the search reads past them to the
    one readers see (it read a fixed few per hit wanted, all hidden, and found nothing)."""
    messages = MessagesRepository()
    shown = await make_session("Shown")
    await messages.create(shown.id, "user", "refund please")
    cleared, deleting = await make_session("Cleared"), await make_session("Deleting")
    for n in range(6):
        await messages.create(cleared.id, "user", f"refund {n}")
        await messages.create(deleting.id, "user", f"refund {n}")
    await messages.clear(cleared.id)
    await get_database()["messages"].insert_one(  # what a clear interrupted leaves behind
        {
            "session_id": cleared.id,
            "seq": 2,
            "role": "user",
            "content": "refund",
            "created_at": utcnow(),
        }
    )
    await get_database()["sessions"].update_one(
        {"_id": deleting.id}, {"$set": {"status": "deleting"}}
    )
    found = await messages.search("refund", limit=1)
    assert [(hit.session_id, hit.seq) for hit in found.hits] == [(shown.id, 1)]


async def test_a_users_scan_reads_their_sessions_newest_first_within_the_bound(
    monkeypatch: pytest.MonkeyPatch, log: Callable[[], Any]
) -> None:
    """Scoped by user, the scan reads the user's sessions (one command), then the messages of
    as many of them, most recently active first, as the bound holds (one command, and one for
    a session read in part): never a window of everyone's messages, nor a read per window."""
    now = utcnow()
    sessions = [await make_session(f"s{n}", user_id="u-9") for n in range(3)]
    for n, session in enumerate(sessions):  # s0 the most recently active
        at = [now - timedelta(hours=n, minutes=4 - m) for m in range(5)]
        await stored(session, [f"refund {n}.{m}" for m in range(5)], at)
    await stored(await make_session("other", user_id="u-8"), ["refund"] * 3, [now] * 3)
    default_connection().text_search = False
    monkeypatch.setattr(search_module, "MAX_SCANNED", 8)
    with log() as names:
        found = await MessagesRepository().search("refund", user_id="u-9", limit=50)
    assert list(names) == ["find", "find", "find"]
    assert [hit.excerpt for hit in found.hits] == [
        "refund 0.4",
        "refund 0.3",
        "refund 0.2",
        "refund 0.1",
        "refund 0.0",
        "refund 1.4",
        "refund 1.3",
        "refund 1.2",
    ]
    assert found.scanned == 8
    # Not searched: s1's older messages and s2 (last active an hour before s1's newest).
    assert found.searched_since == now - timedelta(hours=1, minutes=2)
    monkeypatch.setattr(search_module, "MAX_SCANNED", 100)
    with log() as names:
        whole = await MessagesRepository().search("refund", user_id="u-9", limit=50)
    assert list(names) == ["find", "find"]
    assert (len(whole.hits), whole.scanned, whole.searched_since) == (15, 15, None)


async def test_the_bound_says_since_when_everything_was_searched_both_ways(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the text index (its matches checked) or by the scan (messages read), a search that
    stops at the bound says since when it searched, and the page says so."""
    import httpx

    from agents_core.trace.web import create_app

    session = await make_session("Bound")
    now = utcnow()
    await stored(session, ["a refund"] * 6, [now - timedelta(minutes=6 - n) for n in range(6)])
    monkeypatch.setattr(search_module, "MAX_SCANNED", 3)
    found = await MessagesRepository().search("refund", limit=50)
    assert [hit.seq for hit in found.hits] == [6, 5, 4]
    assert found.searched_since == now - timedelta(minutes=3)
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        page = (await http.get("/search", params={"q": "refund"})).text
    assert "narrow the range to search older ones" in page


async def test_words_of_scripts_written_without_spaces_are_found_inside_a_sentence() -> None:
    """Chinese and Japanese put no space between words: a word is found inside its sentence
    (it was refused as not whole, so nothing in those scripts was ever found but a message of
    the word alone), while a word of a spaced script stays whole. A text index holds such a
    sentence as one token: the scan finds them there too."""
    session = await make_session("CJK")
    messages = MessagesRepository()
    await messages.create(session.id, "user", "我要退款\uff0c谢谢")
    await messages.create(session.id, "user", "退款政策是什么?")
    await messages.create(session.id, "user", "返金してください")
    await messages.create(session.id, "user", "我的refunds呢")
    repo = MessagesRepository()
    assert sorted(hit.seq for hit in (await repo.search("退款")).hits) == [1, 2]
    assert [hit.seq for hit in (await repo.search("返金")).hits] == [3]
    assert (await repo.search("refund")).hits == []
    hit = (await repo.search("退款政策")).hits[0]
    assert hit.excerpt[hit.start : hit.end] == "退款政策"
    assert search_module._phrase("退款 refund").words == ("refund",)


async def test_messages_of_one_millisecond_come_in_the_order_they_were_appended() -> None:
    """Two messages of a session stored in the same millisecond (two writers, two processes:
    their ObjectIds do not follow ``seq``) come newest ``seq`` first, not by ``_id``."""
    session = await make_session("Tie", user_id="u-t")
    now = utcnow()
    older_id, newer_id = ObjectId(), ObjectId()
    await get_database()["messages"].insert_many(
        [
            {
                "_id": ident,
                "session_id": session.id,
                "seq": seq,
                "role": "user",
                "content": f"refund {seq}",
                "created_at": now,
            }
            for seq, ident in ((1, newer_id), (2, older_id))
        ]
    )
    await get_database()["sessions"].update_one(
        {"_id": session.id}, {"$set": {"last_seq": 2, "updated_at": now}}
    )
    repo = MessagesRepository()
    assert [hit.seq for hit in (await repo.search("refund")).hits] == [2, 1]
    assert [hit.seq for hit in (await repo.search("refund", limit=1)).hits] == [2]
    assert [hit.seq for hit in (await repo.search("refund", user_id="u-t")).hits] == [2, 1]


async def test_an_accented_word_is_found_however_its_accent_is_encoded() -> None:
    """Typed composed, "café" finds "café" stored decomposed (e + U+0301, as some keyboards and
    macOS file names send it), and "cafe" finds neither (it found the decomposed one, whose
    accent is no word character, and missed it with the accent)."""
    session = await make_session("Accents")
    messages = MessagesRepository()
    await messages.create(session.id, "user", "un cafe\u0301 noir")
    await messages.create(session.id, "user", "un café crème")
    repo = MessagesRepository()
    assert sorted(hit.seq for hit in (await repo.search("café")).hits) == [1, 2]
    assert sorted(hit.seq for hit in (await repo.search("cafe\u0301")).hits) == [1, 2]
    assert (await repo.search("cafe")).hits == []
    hit = (await repo.search("CAFÉ noir")).hits[0]
    assert hit.excerpt[hit.start : hit.end].casefold() == "café noir"


async def test_a_users_search_since_finds_what_a_slower_writer_stored_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two writers of one session: the one whose clock read came later reserved its ``seq``
    first. The session's last activity stays the newest (it went back to the other's clock
    read, and a user's search since then skipped the session as inactive since)."""
    from agents_core.db.repositories import messages as messages_module

    now = utcnow()
    clock = iter([now, now - timedelta(milliseconds=5)])
    monkeypatch.setattr(messages_module, "utcnow", lambda: next(clock))
    session = await make_session("Racing", user_id="u-r")
    messages = MessagesRepository()
    await messages.create(session.id, "user", "a refund")  # its clock read: now
    await messages.create(session.id, "user", "another refund")  # read 5 ms before, reserved after
    monkeypatch.undo()
    default_connection().text_search = False  # the user's scan, whatever the server
    found = await messages.search("refund", user_id="u-r", since=now)
    assert [hit.seq for hit in found.hits] == [1]
    stored = await SessionsRepository().find_by_id(session.id)
    assert stored is not None
    assert stored.updated_at >= now  # never older than its newest message


@pytest.mark.parametrize(
    ("phrase", "found"),
    [("Straße", [1]), ("straße", [1]), ("ΣΟΦΟΣ", [2]), ("σοφος", [2]), ("İstanbul", [3])],
)
async def test_words_are_asked_of_the_text_index_as_written(phrase: str, found: list[int]) -> None:
    """The server folds case its own way: Python's casefold made "Straße" "strasse" and "ΣΟΦΟΣ"
    "σοφοσ", which the text index never finds (mongoeco, ``make test-mongoeco``, found
    nothing), while the scan found them. Every server finds what the scan finds."""
    session = await make_session("Case")
    messages = MessagesRepository()
    await messages.create(session.id, "user", "die Straße ist lang")
    await messages.create(session.id, "user", "ΣΟΦΟΣ and σοφος")
    await messages.create(session.id, "user", "İstanbul is big")
    assert sorted(hit.seq for hit in (await messages.search(phrase)).hits) == found
    assert search_module._phrase(f"{phrase} {phrase.upper()}").text_query == f'"{phrase}"'


async def test_a_user_with_more_sessions_than_are_searched_is_told_since_when(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A user's search reads their most recently active sessions: a hit in an older one is not
    found, and the result says since when everything was searched, with the text index too (it
    said nothing, as if the whole range had been searched)."""
    now = utcnow()
    for n in range(3):  # s0 the most recently active
        session = await make_session(f"s{n}", user_id="u-m")
        content = "a refund" if n == 2 else "nothing"
        await stored(session, [content], [now - timedelta(hours=n)])
    monkeypatch.setattr(search_module, "MAX_USER_SESSIONS", 2)
    found = await MessagesRepository().search("refund", user_id="u-m")
    assert found.hits == []
    assert found.searched_since == now - timedelta(hours=2)


async def test_a_users_search_until_finds_what_a_later_fork_holds() -> None:
    """A fork keeps its messages' times: a user's search up to before the fork was made finds
    the fork's copy too, as a search of everyone's messages does (it skipped the fork as
    created after the range)."""
    source = await make_session("Source", user_id="u-f")
    then = utcnow() - timedelta(days=2)
    await stored(source, ["a refund"], [then])
    await get_database()["sessions"].update_one(  # made when its message was written
        {"_id": source.id}, {"$set": {"created_at": then}}
    )
    fork = await SessionsRepository().fork(source.id)
    until = then + timedelta(days=1)
    default_connection().text_search = False  # the user's scan, whatever the server
    everyone = await MessagesRepository().search("refund", until=until)
    mine = await MessagesRepository().search("refund", user_id="u-f", until=until)
    assert {hit.session_id for hit in everyone.hits} == {source.id, fork.id}
    assert {hit.session_id for hit in mine.hits} == {source.id, fork.id}


@pytest.mark.parametrize("user_id", [None, "u-b"])
async def test_the_bound_inside_one_millisecond_is_not_said_to_have_searched_it(
    monkeypatch: pytest.MonkeyPatch, user_id: str | None
) -> None:
    """A batch stored in one millisecond, cut by the bound: its older messages were not
    searched, so the result does not say that everything created since that millisecond was
    (it said so, and the message missing from the hits had been created then)."""
    session = await make_session("Batch", user_id="u-b")
    now = utcnow()
    await stored(session, ["a refund"] * 3, [now] * 3)
    default_connection().text_search = False  # the scan, whatever the server
    monkeypatch.setattr(search_module, "MAX_SCANNED", 2)
    found = await MessagesRepository().search("refund", user_id=user_id, limit=50)
    assert [hit.seq for hit in found.hits] == [3, 2]
    assert found.searched_since is not None
    assert found.searched_since > now  # seq 1, created at ``now``, was not searched


async def test_what_an_interrupted_clear_left_does_not_use_up_a_users_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Messages at or below a session's cleared point that the clear's clean-up left behind
    are not searched and do not count against the bound (they crowded out the user's other
    session, which was then said not to have been searched)."""
    now = utcnow()
    cleared = await make_session("Cleared", user_id="u-c")
    older = await make_session("Older", user_id="u-c")
    await stored(older, ["refund b"], [now - timedelta(hours=2)])
    messages = MessagesRepository()
    await stored(cleared, ["refund"] * 6, [now - timedelta(hours=1)] * 6)
    await messages.clear(cleared.id)
    await get_database()["messages"].insert_many(  # what an interrupted clean-up leaves behind
        [
            {
                "session_id": cleared.id,
                "seq": seq,
                "role": "user",
                "content": "refund",
                "created_at": now - timedelta(hours=1),
            }
            for seq in range(1, 7)
        ]
    )
    await messages.create(cleared.id, "user", "refund a")
    default_connection().text_search = False  # the user's scan, whatever the server
    monkeypatch.setattr(search_module, "MAX_SCANNED", 3)
    found = await messages.search("refund", user_id="u-c", limit=50)
    assert [hit.excerpt for hit in found.hits] == ["refund a", "refund b"]
    assert (found.scanned, found.searched_since) == (2, None)
