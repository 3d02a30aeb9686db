"""The trace view in a real browser: Debian's Chromium, headless, driven by Playwright.

After ``agents-core demo`` (and one session full of hostile text), ``agents-core serve`` is run
as a process on the same database, and every page is loaded: the timeline must have one bar
per recorded call with widths in proportion to the recorded durations, injected ``<script>``
must show as text and never run, and each page is saved as a screenshot: the CI artifacts,
in ``tests_browser/output/`` (ignored by git; ``AGENTS_CORE_SCREENSHOTS`` puts them elsewhere).
The pages across sessions (the overview, the run list, a run beside its replay) are checked
against their own API: each chart's bars carry the figures ``/api/overview`` gives, and are
as tall or as long as those figures say.

Playwright never downloads a browser here: it is pointed at ``AGENTS_CORE_CHROMIUM`` (default
``/usr/bin/chromium``, from ``apt-get install chromium``; ``make test-browser`` installs it).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from agents_core.db import close_db, init_db
from agents_core.embedded import EmbeddedServer
from tests.recorded import (
    EVALUATED,
    HOSTILE_OUTPUT,
    HOSTILE_QUESTION,
    HOSTILE_TITLE,
    MODEL_ERROR,
    SCRIPT,
    TEMPLATE,
    record_history,
    record_hostile,
    record_replay,
)

CHROMIUM = os.environ.get("AGENTS_CORE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("AGENTS_CORE_SCREENSHOTS", str(Path(__file__).parent / "output")))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AGENTS_CORE = str(Path(sys.executable).with_name("agents-core"))
#: Pixels a measured bar may differ from its computed width (subpixel layout).
PIXEL_TOLERANCE = 0.05


@dataclass(frozen=True)
class Served:
    url: str
    demo_session: dict[str, Any]
    demo_runs: list[dict[str, Any]]
    hostile_session_id: str
    hostile_run_ids: list[str]
    #: A run and its replay (with another model's answer).
    replayed: tuple[str, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _wait_until_serving(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"agents-core serve exited with {process.returncode}")
        try:
            _get_json(url)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


async def _record_more(uri: str, database: str) -> tuple[str, list[str], tuple[str, str]]:
    """The hostile session; a run and its replay; framework runs over the last 10 days."""
    await init_db(uri, database=database)
    try:
        hostile = await record_hostile()
        replayed = await record_replay()
        await record_history(days=10)
        return str(hostile.session.id), [str(run.id) for run in hostile.runs], replayed
    finally:
        await close_db()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with EmbeddedServer() as database_server:
        uri = database_server.uri  # retryWrites=false already (NOTES-wire-server.md)
        env = {**os.environ, "MONGODB_URI": uri, "MONGODB_DB": "browser_test"}
        demo = subprocess.run(
            [AGENTS_CORE, "demo", "--json"], env=env, capture_output=True, timeout=120
        )
        assert demo.returncode == 0, demo.stderr.decode()
        recorded = json.loads(demo.stdout)
        hostile_id, hostile_runs, replayed = asyncio.run(_record_more(uri, "browser_test"))
        port = _free_port()
        serve = subprocess.Popen(
            [AGENTS_CORE, "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_serving(serve, f"{url}/api/sessions")
            yield Served(
                url=url,
                demo_session=recorded["session"],
                demo_runs=recorded["runs"],
                hostile_session_id=hostile_id,
                hostile_run_ids=hostile_runs,
                replayed=replayed,
            )
        finally:
            serve.send_signal(signal.SIGTERM)
            try:
                _, stderr = serve.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                serve.kill()
                _, stderr = serve.communicate()
        assert serve.returncode == 0, stderr.decode()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (make test-browser)")
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == []


def _open(page: Page, url: str) -> None:
    response = page.goto(url, wait_until="load")
    assert response is not None
    assert response.status == 200, url


def _no_script_ran(page: Page) -> None:
    assert page.evaluate("() => window.__pwned") is None
    assert page.title() != "pwned"
    assert page.locator("script").count() == 0


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_sessions_page_lists_both_sessions(served: Served, page: Page) -> None:
    _open(page, served.url + "/")
    rows = page.locator("tr.session-row")
    titles = rows.locator("a.session-link").all_inner_texts()
    assert HOSTILE_TITLE in titles
    assert any(title.startswith("Demo ") for title in titles)
    _no_script_ran(page)
    _shot(page, "01-sessions")
    # The title search, as a user types it.
    page.fill("form.filters input[name=q]", "<script>")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state("load")
    assert page.locator("tr.session-row").count() == 1
    _no_script_ran(page)


def test_demo_transcript_shows_turns_and_runs(served: Served, page: Page) -> None:
    session_id = served.demo_session["id"]
    _open(page, f"{served.url}/sessions/{session_id}")
    assert page.locator("section.turn").count() == 3
    assert page.locator("tr.run-row").count() == 3
    assert page.locator(".step-model").count() == 6
    assert page.locator(".step-tool").count() == 3
    assert page.locator(".step-tool.step-failed").count() == 1
    assert "ZeroDivisionError: division by zero" in page.locator(".step-failed").inner_text()
    assert page.locator("#summary").inner_text().startswith("3 turn(s) · 3 run(s)")
    _shot(page, "02-session-demo")
    # Pages link by /runs/{id}.
    page.locator("a.run-link").first.click()
    page.wait_for_load_state("load")
    assert page.url == f"{served.url}/runs/{served.demo_runs[0]['id']}"


def _check_timeline(page: Page, run: dict[str, Any]) -> None:
    bars = page.locator("svg#timeline rect[data-kind]")
    calls = run["model_calls"] + run["tool_calls"]
    assert bars.count() == len(calls)
    measured = bars.evaluate_all(
        """bars => bars.map(bar => ({
            kind: bar.dataset.kind, status: bar.dataset.status,
            duration: parseFloat(bar.dataset.durationMs),
            width: bar.getBoundingClientRect().width,
            left: bar.getBoundingClientRect().left }))"""
    )
    svg = page.locator("svg#timeline")
    px_per_ms = float(svg.get_attribute("data-px-per-ms") or "nan")
    # The chart may be scaled to the page: screen pixels per SVG unit.
    rendered = svg.evaluate("svg => svg.getScreenCTM().a")
    expected = sorted(
        [("model", c["status"], c["duration_ms"]) for c in run["model_calls"]]
        + [("tool", c["status"], c["duration_ms"]) for c in run["tool_calls"]]
    )
    assert sorted((m["kind"], m["status"], m["duration"]) for m in measured) == expected
    for bar in measured:
        assert bar["width"] == pytest.approx(
            bar["duration"] * px_per_ms * rendered, abs=PIXEL_TOLERANCE
        ), bar
    # Longer calls are wider bars: the widths rank as the durations do.
    by_duration = sorted(measured, key=lambda m: m["duration"])
    widths = [m["width"] for m in by_duration]
    assert widths == sorted(widths)


def test_demo_run_timelines_match_the_recorded_calls(served: Served, page: Page) -> None:
    for number, run in enumerate(served.demo_runs, 1):
        _open(page, f"{served.url}/runs/{run['id']}")
        _check_timeline(page, run)
        assert page.locator("svg#timeline rect[data-kind=model]").count() == 2
        assert page.locator("svg#timeline rect[data-kind=tool]").count() == 1
        _shot(page, f"03-run-demo-{number}")
    failed = page.locator("svg#timeline rect[data-kind=tool][data-status=error]")
    assert failed.count() == 1  # the last demo run: 1 / 0
    assert "ZeroDivisionError" in page.locator("svg#timeline").inner_html()


def test_hostile_text_stays_text_everywhere(served: Served, page: Page) -> None:
    _open(page, f"{served.url}/sessions/{served.hostile_session_id}")
    assert page.locator("#session-title").inner_text() == HOSTILE_TITLE
    body = page.locator("main").inner_text()
    for text in (HOSTILE_QUESTION, TEMPLATE, MODEL_ERROR, SCRIPT):
        assert text in body, text
    assert EVALUATED not in page.locator("#session-title").inner_text()
    _no_script_ran(page)
    _shot(page, "04-session-hostile")
    for number, run_id in enumerate(served.hostile_run_ids, 1):
        _open(page, f"{served.url}/runs/{run_id}")
        run = _get_json(f"{served.url}/api/runs/{run_id}")
        _check_timeline(page, run)
        _no_script_ran(page)
        _shot(page, f"05-run-hostile-{number}")
    # The second run failed in its model call: a red bar with the error beside it.
    failed = page.locator("svg#timeline rect[data-kind=model][data-status=error]")
    assert failed.count() == 1
    timeline = page.locator("svg#timeline")
    assert MODEL_ERROR in (timeline.locator("rect[data-status=error] title").text_content() or "")
    assert "error: ModelError: upstream said <script>" in (timeline.text_content() or "")
    assert MODEL_ERROR in page.locator("table#model-calls").inner_text()


def test_a_cut_output_links_to_the_whole_text(served: Served, page: Page) -> None:
    _open(page, f"{served.url}/runs/{served.hostile_run_ids[0]}")
    output_cell = page.locator("tr.tool-row td").nth(5)
    assert "END-OF-OUTPUT" not in output_cell.inner_text()
    output_cell.locator("a.full-text").click()
    page.wait_for_load_state("load")
    assert page.url.endswith("/output")
    assert page.locator("body").inner_text().rstrip() == HOSTILE_OUTPUT
    _no_script_ran(page)
    _shot(page, "06-full-output")


def _bars(page: Page, chart: str) -> list[dict[str, Any]]:
    measured: list[dict[str, Any]] = page.locator(
        f'svg[data-chart="{chart}"] rect.bar'
    ).evaluate_all(
        """bars => bars.map(bar => ({
            label: bar.dataset.label, kind: bar.dataset.kind || null,
            value: parseFloat(bar.dataset.value),
            height: bar.getBoundingClientRect().height,
            width: bar.getBoundingClientRect().width }))"""
    )
    return measured


def _in_proportion(bars: list[dict[str, Any]], size: str) -> None:
    """Each bar's pixels over its value: one ratio for the whole chart."""
    top = max(bars, key=lambda bar: bar["value"])
    assert top["value"] > 0
    ratio = top[size] / top["value"]
    for bar in bars:
        assert bar[size] == pytest.approx(bar["value"] * ratio, abs=PIXEL_TOLERANCE), bar


def test_overview_charts_draw_the_apis_figures(served: Served, page: Page) -> None:
    _open(page, served.url + "/overview")
    api = _get_json(served.url + "/api/overview")
    days = {day["day"]: day for day in api["days"]}
    assert sum(day["runs"] for day in api["days"]) == api["total"]["runs"] >= 30
    for chart, field, scale in (
        ("Cost per day", "cost", 1),
        ("Runs per day", "runs", 1),
        ("Tokens per day", "tokens", 1),
        ("Error rate per day", "error_rate", 100),
    ):
        bars = _bars(page, chart)
        assert [bar["label"] for bar in bars] == list(days)  # every day, oldest first
        for bar in bars:
            assert bar["value"] == pytest.approx(days[bar["label"]][field] * scale, rel=1e-6)
        _in_proportion(bars, "height")
    for chart, rows in (("Cost by agent", api["agents"]), ("Cost by model", api["models"])):
        bars = _bars(page, chart)
        assert [(bar["label"], bar["value"]) for bar in bars] == [
            (row["label"], pytest.approx(row["cost"], rel=1e-6)) for row in rows
        ]
        _in_proportion(bars, "width")
    latency = _bars(page, "Tool call duration, p50 and p95")
    for row in api["tools"]:
        drawn = {bar["kind"]: bar["value"] for bar in latency if bar["label"] == row["label"]}
        assert drawn == {
            "p50": pytest.approx(row["p50_ms"], rel=1e-6),
            "p95": pytest.approx(row["p95_ms"], rel=1e-6),
        }
    _in_proportion(latency, "width")
    assert page.locator("[data-total=runs]").inner_text() == f"{api['total']['runs']:,}"
    _no_script_ran(page)
    _shot(page, "07-overview")
    # What the README shows: the first screen of it.
    page.screenshot(path=str(SCREENSHOTS / "07-overview-first-screen.png"))


def test_runs_across_sessions_sort_and_filter_as_a_person_would(served: Served, page: Page) -> None:
    _open(page, served.url + "/runs")
    api = _get_json(served.url + "/api/runs")
    rows = page.locator("tr.run-row")
    assert rows.count() == len(api["runs"]) == 50
    assert [rows.nth(n).get_attribute("data-run") for n in range(5)] == [
        run["id"] for run in api["runs"][:5]
    ]
    _no_script_ran(page)
    _shot(page, "08-runs")
    page.select_option("select[name=sort]", "cost")
    page.select_option("select[name=status]", "failed")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state("load")
    ranked = _get_json(served.url + "/api/runs?sort=cost&status=failed")["runs"]
    assert ranked
    assert all(run["status"] == "failed" for run in ranked)
    costs = [run["cost"] for run in ranked]
    assert costs == sorted(costs, reverse=True)
    shown = page.locator("tr.run-row")
    assert [shown.nth(n).get_attribute("data-run") for n in range(shown.count())] == [
        run["id"] for run in ranked
    ]
    _shot(page, "09-runs-failed-by-cost")


def test_a_run_beside_its_replay(served: Served, page: Page) -> None:
    original, replay = served.replayed
    _open(page, f"{served.url}/runs/{replay}")
    page.locator("a#compare").click()
    page.wait_for_load_state("load")
    assert page.url == f"{served.url}/runs/{original}/compare/{replay}"
    left, right = page.locator("svg#timeline-left"), page.locator("svg#timeline-right")
    assert left.get_attribute("data-px-per-ms") == right.get_attribute("data-px-per-ms")
    assert page.locator("table#outputs del").count() >= 1
    assert page.locator("table#outputs ins").count() >= 1
    assert page.locator("tr.delta").count() == 5
    _no_script_ran(page)
    _shot(page, "10-compare")


def test_search_from_the_box_on_every_page(served: Served, page: Page) -> None:
    _open(page, served.url + "/runs")
    page.fill("form.top-search input[name=q]", "what TIME is")
    page.press("form.top-search input[name=q]", "Enter")
    page.wait_for_load_state("load")
    assert "/search?q=what+TIME+is" in page.url
    hits = page.locator("tr.hit")
    assert hits.count() == 1
    assert page.locator("tr.hit mark").inner_text() == "What time is"
    assert "no text index" in page.locator("#method").inner_text()
    _shot(page, "11-search")
    page.fill("main input[name=q]", "<script>")
    page.click("main form.filters button[type=submit]")
    page.wait_for_load_state("load")
    assert page.locator("tr.hit").count() >= 1
    _no_script_ran(page)
    hits.first.locator("a.hit-link").click()
    page.wait_for_load_state("load")
    assert "/sessions/" in page.url


#: A phone held upright (issue 23: "the trace view is unreadable 420 px wide").
PHONE: ViewportSize = {"width": 420, "height": 900}


def _phone_pages(served: Served) -> dict[str, str]:
    original, replay = served.replayed
    return {
        "sessions": "/",
        "session": f"/sessions/{served.demo_session['id']}",
        "run": f"/runs/{served.demo_runs[0]['id']}",
        "hostile-run": f"/runs/{served.hostile_run_ids[0]}",
        "runs": "/runs",
        "overview": "/overview",
        "compare": f"/runs/{original}/compare/{replay}",
        "search": "/search?q=what+time+is",
        "threads": "/threads",
    }


def test_every_page_reads_on_a_phone_420_px_wide(served: Served, browser: Browser) -> None:
    """The page never scrolls sideways (what is wider, a table or a chart, scrolls in its own
    box), no text is drawn smaller than 10 px (a chart is never shrunk to fit), and the
    header's links and search box stay on the screen."""
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        for name, path in _phone_pages(served).items():
            _open(page, served.url + path)
            layout = page.evaluate(
                """() => {
                  const width = window.innerWidth;
                  const sideways = document.documentElement.scrollWidth - width;
                  // Drawn text: HTML text by its computed size, SVG text by its box.
                  const tiny = [];
                  for (const svg of document.querySelectorAll('svg')) {
                    const box = svg.viewBox.baseVal;
                    if (!box || !box.width) continue;
                    const scale = svg.getBoundingClientRect().width / box.width;
                    for (const text of svg.querySelectorAll('text')) {
                      const size = parseFloat(getComputedStyle(text).fontSize) * scale;
                      if (size < 10) {
                        tiny.push(`${svg.id || svg.dataset.chart}: ${size}`);
                        break;
                      }
                    }
                  }
                  for (const el of document.querySelectorAll('main *, header *')) {
                    if (el.closest('svg') || !el.textContent.trim()) continue;
                    const size = parseFloat(getComputedStyle(el).fontSize);
                    if (size < 10) tiny.push(`${el.tagName}: ${size}`);
                  }
                  // The header's own controls are within the screen, not beside it.
                  const outside = [...document.querySelectorAll('header.top a, header.top input')]
                    .map(el => el.getBoundingClientRect())
                    .filter(r => r.left < 0 || r.right > width + 0.5).length;
                  return {sideways, tiny, outside};
                }"""
            )
            assert layout == {"sideways": 0, "tiny": [], "outside": 0}, (name, layout)
            _no_script_ran(page)
            page.screenshot(path=str(SCREENSHOTS / f"12-phone-{name}.png"), full_page=True)
    finally:
        context.close()
