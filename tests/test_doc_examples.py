"""The integration docs start with examples that run as written on a fresh machine.

Each ```python block of ``docs/openai-agents.md`` and ``docs/langgraph.md`` is a whole script;
here each runs as a reader runs it: ``python example.py`` in a process of its own, from an empty
directory, with no ``MONGODB_URI`` and no ``AGENTS_CORE_*`` setting, so on the embedded server of
``./.agents-core``. They run at once (they share the server the first one starts: what a second
process does on a reader's machine too), so the module costs about the slowest one. Then the CLI
shows what they stored, as the docs say it does. The server is stopped at the end, and found
stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agents_core.cli import app
from agents_core.embedded import EmbeddedServer, server_status, stop_server
from tests.readme_examples import DOCS, ROOT, opening_block, python_blocks, script_name

OPENAI_AGENTS, LANGGRAPH = DOCS
HANDLER_SECTION = "## Recording runs: `AgentsCoreCallbackHandler`"
pytestmark = pytest.mark.slow  # three processes and the embedded server: ~10 s

ANSWER = "Your refund was sent on Monday.\n"


def script(doc: Path, heading: str | None = None) -> tuple[str, str]:
    """The script a doc (or a section of it) starts with, and its file name."""
    kind, block = opening_block(doc, heading)
    assert kind == "python", f"{doc.name} {heading or ''} starts with a {kind!r} block"
    return block, script_name(doc, python_blocks(doc).index(block) + 1)


#: The scripts a reader meets first, by the file name they run under.
SCRIPTS = {
    name: block
    for block, name in (
        script(OPENAI_AGENTS),
        script(LANGGRAPH),
        script(LANGGRAPH, HANDLER_SECTION),
    )
}


@pytest.fixture(scope="module")
def fresh_machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty working directory; its embedded server stopped (and checked) at the end."""
    directory = tmp_path_factory.mktemp("reader")
    try:
        yield directory
    finally:
        stop_server(directory / ".agents-core")
        assert server_status(directory / ".agents-core") is None


@pytest.fixture(scope="module")
def ran(fresh_machine: Path) -> dict[str, tuple[int, str, str]]:
    """Every script of ``SCRIPTS``, run as written (``python NAME`` in ``fresh_machine``, all
    at once): its exit code, stdout and stderr, by name."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MONGODB_", "AGENTS_CORE_"))
    }
    # This checkout's package, whatever the environment has installed.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    running = {}
    for name, text in SCRIPTS.items():
        (fresh_machine / name).write_text(text)
        running[name] = subprocess.Popen(
            [sys.executable, name],
            cwd=fresh_machine,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finished = {}
    for name, process in running.items():
        try:
            out, err = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        finished[name] = (process.returncode, out, err)
    return finished


def run_as_written(ran: dict[str, tuple[int, str, str]], name: str) -> str:
    """What ``python NAME`` printed (it exited 0)."""
    code, out, err = ran[name]
    assert code == 0, err
    return out


def cli_json(directory: Path, *args: str) -> Any:
    """``agents-core ARGS --json`` on the embedded server of ``directory``, parsed."""
    with EmbeddedServer(directory / ".agents-core") as server:
        shown = CliRunner().invoke(
            app, [*args, "--json"], env={"MONGODB_URI": server.uri}, catch_exceptions=False
        )
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.stdout)


def test_every_python_block_of_the_integration_docs_is_a_script_run_here() -> None:
    every = {
        script_name(doc, n): block
        for doc in DOCS
        for n, block in enumerate(python_blocks(doc), start=1)
    }
    assert every == SCRIPTS


def test_the_openai_agents_doc_starts_with_an_example_that_runs(
    fresh_machine: Path, ran: dict[str, tuple[int, str, str]]
) -> None:
    assert run_as_written(ran, "openai_agents_1.py") == ANSWER
    # What the doc says the CLI shows: the conversation, titled, with its run.
    [session] = [s for s in cli_json(fresh_machine, "sessions") if s["user_id"] == "u-42"]
    assert session["title"] == "Where is my refund?"
    [run] = cli_json(fresh_machine, "runs", session["id"])
    assert (run["source"], run["status"]) == ("openai-agents", "completed")
    shown = cli_json(fresh_machine, "show", session["id"])
    assert [m["content"] for m in shown["session"]["messages"]] == [
        "Where is my refund?",
        ANSWER.strip(),
    ]


def test_the_langgraph_doc_starts_with_an_example_that_runs(
    fresh_machine: Path, ran: dict[str, tuple[int, str, str]]
) -> None:
    assert run_as_written(ran, "langgraph_1.py") == ANSWER
    assert "refund-42" in [t["thread_id"] for t in cli_json(fresh_machine, "threads")]
    state = cli_json(fresh_machine, "thread", "refund-42")
    [messages] = state["values"]
    assert messages["text"] == f"human: Where is my refund?\nai: {ANSWER.strip()}"


def test_the_callback_handler_section_starts_with_an_example_that_runs(
    fresh_machine: Path, ran: dict[str, tuple[int, str, str]]
) -> None:
    assert run_as_written(ran, "langgraph_2.py") == ""
    [session] = [s for s in cli_json(fresh_machine, "sessions") if s["external_id"] == "refund-7"]
    [run] = cli_json(fresh_machine, "runs", session["id"])
    assert (run["source"], run["status"], len(run["model_calls"])) == ("langgraph", "completed", 1)
    assert cli_json(fresh_machine, "thread", "refund-7")["session_id"] == session["id"]
