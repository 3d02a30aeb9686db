"""Who the trace view answers: the ``Host`` a request names (DNS rebinding) and its token.

The checks come before any read, so these run on the in-memory database alone. Requests are
sent as raw ASGI calls where a client would fix the ``Host`` header itself (missing, twice).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Message

from agents_core.trace.web import check_token, create_app, is_loopback
from agents_core.trace.web.app import logger as web_logger

pytestmark = pytest.mark.usefixtures("mock_db")

TOKEN = "tok_" + "x" * 20 + "-Z9.~"
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "cache-control")


async def ask(
    app: ASGIApp,
    hosts: list[str],
    *,
    path: str = "/api/sessions",
    query: bytes = b"",
    server: tuple[str, int] = ("127.0.0.1", 8000),
    extra: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One GET with these ``Host`` header lines (none, one or several), as a server passes it."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", host.encode()) for host in hosts] + (extra or []),
        "client": ("127.0.0.1", 50000),
        "server": server,
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    headers = {k.decode().lower(): v.decode("latin-1") for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], headers, body


# (bind host, bind port, Host header lines, expected status); the connection arrives on
# the bind's port (for a bind on port 0, on 41234).
HOSTS: list[tuple[str, int, list[str], int]] = [
    # A loopback address: itself and localhost, with its port.
    ("127.0.0.1", 8000, ["127.0.0.1:8000"], 200),
    ("127.0.0.1", 8000, ["localhost:8000"], 200),
    ("127.0.0.1", 8000, ["LocalHost:8000"], 200),
    # DNS rebinding: any other name, though it resolves to 127.0.0.1 by then.
    ("127.0.0.1", 8000, ["attacker.example:8000"], 421),
    ("127.0.0.1", 8000, ["localhost.attacker.example:8000"], 421),
    ("127.0.0.1", 8000, ["127.0.0.1.nip.io:8000"], 421),
    ("127.0.0.1", 8000, ["localhost.:8000"], 421),
    ("127.0.0.1", 8000, ["attacker.example"], 421),
    # Another address or port of this machine is not this server.
    ("127.0.0.1", 8000, ["127.0.0.1:8001"], 421),
    ("127.0.0.1", 8000, ["localhost"], 421),  # port 80
    ("127.0.0.1", 8000, ["127.0.0.2:8000"], 421),
    ("127.0.0.1", 8000, ["[::1]:8000"], 421),
    ("127.0.0.1", 8000, ["0.0.0.0:8000"], 421),
    ("127.0.0.1", 8000, ["2130706433:8000"], 421),  # 127.0.0.1 as one number: a name here
    # Missing, twice, or not a host at all.
    ("127.0.0.1", 8000, [], 400),
    ("127.0.0.1", 8000, ["127.0.0.1:8000", "127.0.0.1:8000"], 400),
    ("127.0.0.1", 8000, ["127.0.0.1:8000", "attacker.example:8000"], 400),
    ("127.0.0.1", 8000, [""], 400),
    ("127.0.0.1", 8000, [":8000"], 400),
    ("127.0.0.1", 8000, ["127.0.0.1:"], 400),
    ("127.0.0.1", 8000, ["127.0.0.1:80000"], 400),
    ("127.0.0.1", 8000, ["127.0.0.1:+8000"], 400),
    ("127.0.0.1", 8000, ["127.0.0.1:٨٠٠٠"], 400),
    ("127.0.0.1", 8000, ["127.0.0.1:8000:8000"], 400),
    ("127.0.0.1", 8000, ["user@127.0.0.1:8000"], 400),
    ("127.0.0.1", 8000, ["127.0.0.1:8000/x"], 400),
    ("127.0.0.1", 8000, ["local host:8000"], 400),
    ("127.0.0.1", 8000, ["::1:8000"], 400),
    ("127.0.0.1", 8000, ["[::1:8000"], 400),
    ("127.0.0.1", 8000, ["[::1]8000"], 400),
    ("127.0.0.1", 8000, ["[zz::1]:8000"], 400),
    ("127.0.0.1", 8000, ["é.example:8000"], 400),
    # IPv6 loopback: its brackets, any spelling of ::1, and localhost.
    ("::1", 8000, ["[::1]:8000"], 200),
    ("[::1]", 8000, ["[::1]:8000"], 200),
    ("::1", 8000, ["[0:0:0:0:0:0:0:1]:8000"], 200),
    ("::1", 8000, ["localhost:8000"], 200),
    ("::1", 8000, ["127.0.0.1:8000"], 421),
    ("::1", 8000, ["[::1]:8001"], 421),
    ("::1", 8000, ["[::2]:8000"], 421),
    # localhost: whatever it resolves to.
    ("localhost", 8000, ["localhost:8000"], 200),
    ("localhost", 8000, ["127.0.0.1:8000"], 200),
    ("localhost", 8000, ["[::1]:8000"], 200),
    ("localhost", 8000, ["attacker.example:8000"], 421),
    # Port 80 may go unsaid.
    ("127.0.0.1", 80, ["127.0.0.1"], 200),
    ("127.0.0.1", 80, ["localhost:80"], 200),
    # Port 0: the port the server chose, which the connection arrived on.
    ("127.0.0.1", 0, ["127.0.0.1:41234"], 200),
    ("127.0.0.1", 0, ["127.0.0.1:8000"], 421),
    ("127.0.0.1", 0, ["attacker.example:41234"], 421),
]


@pytest.mark.parametrize(
    ("bind", "port", "hosts", "status"),
    HOSTS,
    ids=[f"{bind}:{port}-{hosts!r}" for bind, port, hosts, _ in HOSTS],
)
async def test_only_requests_for_the_bound_address_are_answered(
    bind: str,
    port: int,
    hosts: list[str],
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(host=bind, port=port)
    arrived = ("127.0.0.1", port or 41234)
    with caplog.at_level(logging.DEBUG, logger=web_logger.name):
        for path in ("/api/sessions", "/"):
            caplog.clear()
            got, headers, body = await ask(app, hosts, path=path, server=arrived)
            assert got == status, (path, body[:300])
            for header in SECURITY_HEADERS:
                assert header in headers, (path, header)
            refusals = [r for r in caplog.records if r.name == web_logger.name]
            if status == 200:
                assert refusals == []
                continue
            assert len(refusals) == 1  # logged once, as a warning
            assert refusals[0].levelno == logging.WARNING
            if path.startswith("/api/"):  # the app's own error form
                assert headers["content-type"] == "application/json"
                assert "host" in json.loads(body)["error"]
            else:
                assert headers["content-type"].startswith("text/html")
                assert f"<h1>{status}</h1>".encode() in body
                assert b"host" in body


async def test_a_logged_host_is_cut_and_quoted(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app()
    with caplog.at_level(logging.WARNING, logger=web_logger.name):
        await ask(app, ["a" * 5_000 + ".example:8000"])
        await ask(app, ["x.example:8000\r\nforged log line"])
    long, forged = caplog.records
    assert len(long.getMessage()) < 400
    assert "\n" not in forged.getMessage()


# --- the token ---------------------------------------------------------------------------


def assert_token_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing of ours logged the token (httpx, the client here, logs its URLs)."""
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("agents_core")]
    assert ours  # the refusals were logged
    assert all(TOKEN not in message for message in ours)


def client(app: ASGIApp, base_url: str = "http://laptop.lan:8000") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "", "192.168.1.10", "laptop.lan"])
def test_an_address_other_than_loopback_needs_a_token(bind: str) -> None:
    with pytest.raises(ValueError, match="needs a token"):
        create_app(host=bind, port=8000)
    create_app(host=bind, port=8000, token=TOKEN)


@pytest.mark.parametrize(
    "bad",
    ["", "short", "x" * 15, "x" * 257, "x" * 20 + " y", "x" * 20 + ";y", "x" * 20 + "é"],
)
def test_a_token_is_long_enough_and_travels_unchanged(bad: str) -> None:
    with pytest.raises(ValueError, match="a token is 16 to 256 characters") as raised:
        create_app(host="0.0.0.0", token=bad)
    assert bad not in str(raised.value) or bad == ""
    with pytest.raises(ValueError, match="a token is 16 to 256 characters"):
        check_token(bad)
    assert check_token("x" * 16) == "x" * 16


@pytest.mark.parametrize("port", [-1, 65536])
def test_a_port_out_of_range_is_refused(port: int) -> None:
    with pytest.raises(ValueError, match="port"):
        create_app(port=port)


async def test_without_the_token_nothing_is_answered(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(host="0.0.0.0", port=8000, token=TOKEN)
    wrong = TOKEN[:-1] + "!"
    attempts: list[dict[str, str]] = [
        {},
        {"Authorization": f"Bearer {wrong}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer"},
        {"Cookie": f"agents_core_token={wrong}"},
        {"Cookie": f"other={TOKEN}"},
        {"X-Token": TOKEN},
    ]
    with caplog.at_level(logging.DEBUG):
        async with client(app) as http:
            for headers in attempts:
                for path in ("/api/sessions", "/", "/no/such/page", "/api/runs/x"):
                    response = await http.get(path, headers=headers)
                    assert response.status_code == 401, (headers, path)
                    assert response.headers["www-authenticate"] == "Bearer"
                    assert "set-cookie" not in response.headers
                    for header in SECURITY_HEADERS:
                        assert header in response.headers
                    if path.startswith("/api/"):
                        assert set(response.json()) == {"error"}
                        assert "token" in response.json()["error"]
                    else:
                        assert "<h1>401</h1>" in response.text
            # Bytes beyond ASCII (a client sends what it likes).
            raw = [
                (b"authorization", "Bearer é".encode()),
                (b"cookie", "agents_core_token=é".encode()),
            ]
            assert (await ask(app, ["laptop.lan:8000"], extra=raw))[0] == 401
            # A wrong ?token= is not traded for a cookie, nor is a repeated one.
            for query in (f"token={wrong}", f"token={TOKEN}&token={TOKEN}", "token="):
                response = await http.get(f"/?{query}")
                assert response.status_code == 401, query
                assert "set-cookie" not in response.headers
    assert_token_never_logged(caplog)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {TOKEN}"},
        {"Authorization": f"bearer  {TOKEN}"},
        {"Cookie": f"agents_core_token={TOKEN}"},
        {"Cookie": f"a=b; agents_core_token={TOKEN}; c=d"},
        {"Authorization": "Bearer wrong", "Cookie": f"agents_core_token={TOKEN}"},
    ],
    ids=["header", "header-spelling", "cookie", "cookie-among-others", "either"],
)
async def test_the_token_as_a_header_or_a_cookie_lets_a_request_in(
    headers: dict[str, str],
) -> None:
    app = create_app(host="0.0.0.0", port=8000, token=TOKEN)
    async with client(app) as http:
        response = await http.get("/api/sessions", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"sessions": [], "next": None}
        assert (await http.get("/", headers=headers)).status_code == 200


async def test_the_printed_url_trades_its_token_for_a_cookie(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(host="0.0.0.0", port=8000, token=TOKEN)
    with caplog.at_level(logging.DEBUG):
        async with client(app) as http:
            response = await http.get(f"/?user=u%201&token={TOKEN}&status=all")
            assert response.status_code == 303
            assert response.headers["location"] == "/?user=u%201&status=all"
            cookie = response.headers["set-cookie"]
            assert cookie.startswith(f"agents_core_token={TOKEN};")
            attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
            assert {"httponly", "samesite=strict", "path=/"} <= attributes
            assert "secure" not in attributes  # plain HTTP: a Secure cookie would be dropped
            for header in SECURITY_HEADERS:  # Cache-Control: no-store, so never replayed
                assert header in response.headers
            # A browser follows the redirect with the cookie, and keeps it.
            followed = await http.get("/?user=u%201&status=all")
            assert followed.status_code == 200
            assert (await http.get("/api/sessions")).status_code == 200
            # The bare ?token= of a path, and a path another site could be read as.
            response = await http.get(f"/api/sessions?token={TOKEN}")
            assert response.headers["location"] == "/api/sessions"
            for path in ("//attacker.example/", "/\\attacker.example/"):
                _, headers, _ = await ask(
                    app, ["x:8000"], path=path, query=f"token={TOKEN}".encode()
                )
                assert headers["location"] == "/attacker.example/"
            http.cookies.clear()
            assert (await http.get("/api/sessions")).status_code == 401
    assert_token_never_logged(caplog)


async def test_the_cookie_is_secure_behind_https() -> None:
    app = create_app(host="0.0.0.0", port=443, token=TOKEN)
    async with client(app, "https://laptop.lan") as http:
        response = await http.get(f"/?token={TOKEN}")
    assert "secure" in response.headers["set-cookie"].lower()


async def test_a_loopback_bind_takes_a_token_too_and_checks_the_host_first() -> None:
    app = create_app(host="127.0.0.1", port=8000, token=TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with client(app, "http://127.0.0.1:8000") as http:
        assert (await http.get("/api/sessions")).status_code == 401
        assert (await http.get("/api/sessions", headers=bearer)).status_code == 200
    async with client(app, "http://attacker.example:8000") as http:
        # A rebinding page is refused for its name, whatever it sends.
        assert (await http.get("/api/sessions", headers=bearer)).status_code == 421
        response = await http.get(f"/?token={TOKEN}")
        assert response.status_code == 421
        assert "set-cookie" not in response.headers


async def test_a_wildcard_bind_answers_any_name_with_its_port_and_the_token() -> None:
    app = create_app(host="0.0.0.0", port=8000, token=TOKEN)
    bearer = [(b"authorization", f"Bearer {TOKEN}".encode())]
    for hosts, status in [
        (["laptop.lan:8000"], 200),
        (["192.168.1.10:8000"], 200),
        (["[fe80::1]:8000"], 200),
        (["laptop.lan:8001"], 421),
        (["laptop.lan"], 421),
        ([], 400),
        (["laptop lan:8000"], 400),
    ]:
        assert (await ask(app, hosts, extra=bearer))[0] == status, hosts
    specific = create_app(host="192.168.1.10", port=8000, token=TOKEN)
    assert (await ask(specific, ["192.168.1.10:8000"], extra=bearer))[0] == 200
    assert (await ask(specific, ["laptop.lan:8000"], extra=bearer))[0] == 421


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.10", False),
        ("example.org", False),
        ("localhost.example.org", False),
    ],
)
def test_which_hosts_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
