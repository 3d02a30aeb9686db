"""The trace view's access rules as Chromium meets them: a page that DNS rebinding brought to
``127.0.0.1`` under its own name, and the printed ``?token=`` URL turned into a cookie.

Chromium is told that ``attacker.example`` resolves to ``127.0.0.1`` (``--host-resolver-rules``),
which is where a rebinding attack ends: the browser then asks the trace view for a page of
``attacker.example``. ``agents-core serve`` runs on loopback with a token (from
``AGENTS_CORE_SERVE_TOKEN``) on a private in-memory database of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from agents_core.cli.trace import TOKEN_ENV
from agents_core.embedded import EmbeddedServer
from tests.test_serve import free_port, wait_until_serving
from tests_browser.test_trace_view import AGENTS_CORE, CHROMIUM, CHROMIUM_ARGS

TOKEN = "browser-token-" + "b" * 20
REBOUND = "attacker.example"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with EmbeddedServer() as database_server:
        env = {**os.environ, "MONGODB_URI": database_server.uri, "MONGODB_DB": "access_test"}
        env[TOKEN_ENV] = TOKEN
        port = free_port()
        serve = subprocess.Popen(
            [AGENTS_CORE, "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            served = f"http://127.0.0.1:{port}"
            wait_until_serving(serve, f"{served}/api/sessions", token=TOKEN)
            yield served
        finally:
            serve.send_signal(signal.SIGTERM)
            try:
                _, stderr = serve.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                serve.kill()
                _, stderr = serve.communicate()
        assert serve.returncode == 0, stderr.decode()
        assert TOKEN.encode() not in stderr  # the refusals are logged, the token never


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (make test-browser)")
    rules = f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, rules]
        )
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context()
    yield context
    context.close()


def test_the_printed_url_lets_a_browser_in_and_leaves_the_address_bar(
    url: str, context: BrowserContext
) -> None:
    page = context.new_page()
    refused = page.goto(f"{url}/")
    assert refused is not None
    assert refused.status == 401
    assert page.locator("h1").inner_text() == "401"
    response = page.goto(f"{url}/?token={TOKEN}")
    assert response is not None
    assert response.status == 200
    assert page.url == f"{url}/"  # the token is no longer in the address bar
    (cookie,) = context.cookies()
    assert cookie["value"] == TOKEN
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    # The cookie goes with every later request: a link followed, an API read.
    api = page.goto(f"{url}/api/sessions")
    assert api is not None
    assert api.status == 200
    assert page.evaluate("() => document.cookie") == ""  # HttpOnly: no script could read it


def test_a_rebound_name_is_refused_even_with_the_token(url: str, context: BrowserContext) -> None:
    port = url.rsplit(":", 1)[1]
    page = context.new_page()
    response = page.goto(f"http://{REBOUND}:{port}/api/sessions")
    assert response is not None
    assert response.status == 421
    assert "misdirected request" in response.json()["error"]
    response = page.goto(f"http://{REBOUND}:{port}/?token={TOKEN}")
    assert response is not None
    assert response.status == 421
    assert page.locator("h1").inner_text() == "421"
    assert context.cookies() == []  # no cookie under the attacker's name
