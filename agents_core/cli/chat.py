"""The conversation commands of ``agents-core``: the scripted demo, and a chat with a real model.

    agents-core demo                  # a scripted conversation through AgentRunner, with its trace
    agents-core chat [--model M]      # the demo's tools with an OpenAI(-compatible) model
        [--timeout SECONDS]           # one try of a model call (default 60 s, one retry)
        [--price IN/OUT[/CACHED]]     # US dollars per million tokens: each call's cost

Both record what they do like any service would (sessions, messages, runs, tool calls) and
print each run's trace. The demo's agent, tools and scripted model are ``agents_core.cli.demo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import os
import sys
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from agents_core.cli import common, render
from agents_core.cli.common import JsonOption

if TYPE_CHECKING:
    from bson import ObjectId

    from agents_core.db import Message, Price, Run, Session

__all__ = ["chat", "demo"]


def demo(as_json: JsonOption = False) -> None:
    """Run a scripted three-turn conversation (one failing tool) and print its trace."""

    async def work() -> tuple[Session, list[Message], list[Run], list[Session], render.ShortIds]:
        from agents_core.cli.demo import TURNS, demo_agent, demo_model, demo_tools
        from agents_core.db import MessagesRepository, SessionsRepository
        from agents_core.runner import AgentRunner

        agent = await demo_agent()
        sessions = SessionsRepository()
        title = f"Demo {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
        session = await sessions.create(title, user_id="demo")
        await sessions.set_active_agent(session.id, agent.id)
        runner = AgentRunner(demo_model(), demo_tools())
        runs = [await runner.run(session.id, question) for question, _ in TURNS]
        messages = await MessagesRepository().find_by_session(session.id, 100)
        active = await sessions.list_active(user_id="demo", limit=20)
        short = await common.short_ids(agents=True, as_json=as_json)
        return session, messages, runs, active, short

    def display(
        result: tuple[Session, list[Message], list[Run], list[Session], render.ShortIds],
    ) -> None:
        session, messages, runs, active, short = result
        if as_json:
            common.print_json({"session": session, "messages": messages, "runs": runs})
            return
        render.out.print(Text.assemble(("Session: ", "bold"), str(session.id)))
        render.out.print(render.transcript(messages))
        for run in runs:
            render.out.print(render.run_trace(run, short))
        render.out.print(render.sessions(active, "Demo sessions (newest first)", short))
        render.out.print(
            f"{len(active)} demo session(s) in this database; see one with `agents-core show ID`."
        )
        render.out.print(
            f"Next: `agents-core show {short(session.id)}` (its turns as a tree), "
            "`agents-core serve` (the trace view in a browser). After `make demo` the command is "
            "`.venv/bin/agents-core`, or `agents-core` once `source .venv/bin/activate` ran."
        )

    common.run(work, display, as_json=as_json, announce=not as_json, writes=True)


def chat(
    model: Annotated[
        str, typer.Option("--model", help="the model to ask (OpenAI, or the server's name)")
    ] = "gpt-4.1-mini",
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print each turn as one line of JSON: the answer and the run."),
    ] = False,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="how long one try of a model call may take (default 60; one retry)",
        ),
    ] = None,
    price: Annotated[
        str | None,
        typer.Option(
            "--price",
            metavar="IN/OUT[/CACHED]",
            help=(
                "US dollars per million input/output tokens (and cached input tokens), "
                "e.g. 0.40/1.60: each model call's cost (default: none, cost 0)"
            ),
        ),
    ] = None,
) -> None:
    """Talk to a real model with the demo's tools; each turn's trace after the answer.

    Configured by OPENAI_API_KEY, and OPENAI_BASE_URL for an OpenAI-compatible server (vLLM,
    Ollama, LiteLLM, …). Lines come from the terminal, or from a pipe (one turn a line); an
    empty line, `exit` or end of input ends the conversation. On a terminal a status line
    says while the model is being waited for. With --json each turn is one line of JSON
    ({"session_id", "input", "answer", "run"}), a model error one on stderr.
    """
    seconds = None if timeout is None else _timeout(timeout)
    rates = None if price is None else _price(price)
    key, base_url = os.environ.get("OPENAI_API_KEY"), os.environ.get("OPENAI_BASE_URL")
    if not key and not base_url:
        common.fail(
            "no model is configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for an "
            "OpenAI-compatible server such as Ollama or vLLM)",
            as_json=as_json,
        )
    try:
        from agents_core.models.openai import OpenAIChatModel
    except ImportError:
        common.fail(
            "the chat needs the openai extra: pip install 'agents-core[openai]'", as_json=as_json
        )
    from agents_core.cli.demo import demo_agent, demo_tools
    from agents_core.db import SessionsRepository
    from agents_core.runner import AgentRunner, ModelError
    from agents_core.trace import visible

    async def work() -> None:
        client = OpenAIChatModel(
            model, base_url=base_url, api_key=key or "unused", price=rates, timeout=seconds
        )
        try:
            agent = await demo_agent()
            sessions = SessionsRepository()
            session = await sessions.create(
                f"Chat {datetime.now(UTC):%Y-%m-%d %H:%M:%S}", user_id="chat"
            )
            await sessions.set_active_agent(session.id, agent.id)
            if not as_json:
                render.out.print(
                    Text.assemble(("Session: ", "bold"), str(session.id), f"  model {model}")
                )
            runner = AgentRunner(client, demo_tools())
            while (line := await _read_line(prompt=not as_json)) is not None:
                try:
                    # The conversation's stream says it waits (a terminal only: a pipe or a
                    # file gets the answers and nothing else; with --json, stderr does).
                    waiting = f"waiting for {model}… (Ctrl-C stops)"
                    with render.spinner(waiting, stdout=not as_json):
                        run = await runner.run(session.id, line)
                except ModelError as exc:
                    if as_json:
                        error = {"error": f"model error: {exc}", "input": line}
                        common.print_json_line(error, stream=sys.stderr)
                    else:
                        # One line, as every error (a script reads the lines of stderr).
                        error_line = Text(f"model error: {visible(str(exc))}", style="red")
                        render.err.print(error_line, soft_wrap=True)
                    continue
                answer = await _answer(session.id, run.input_seq)
                if as_json:
                    common.print_json_line(
                        {"session_id": session.id, "input": line, "answer": answer, "run": run}
                    )
                    continue
                # The model's text, with its control characters shown rather than acting.
                render.out.print(Text.assemble(("assistant: ", "bold"), visible(answer)))
                render.out.print(render.run_trace(run))
                sys.stdout.flush()
        finally:
            await client.aclose()

    common.run(work, lambda _: None, as_json=as_json, announce=True, writes=True)


def _timeout(raw: str) -> float:
    """``--timeout``: seconds, a positive finite number (else a usage error, exit code 2)."""
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        common.fail(
            f"--timeout must be a positive number of seconds (60, 2.5), not {raw!r}",
            as_json=False,
            code=2,
        )
    return seconds


def _price(raw: str) -> Price:
    """``--price IN/OUT[/CACHED]``: US dollars per million input, output (and cached input)
    tokens, as ``Price`` takes them (else a usage error, exit code 2)."""
    from agents_core.db import Price

    try:
        rates = [float(part) for part in raw.split("/")]
        if len(rates) not in (2, 3):
            raise ValueError(raw)
        return Price(
            input_per_million=rates[0],
            output_per_million=rates[1],
            cached_input_per_million=rates[2] if len(rates) == 3 else None,
        )
    except ValueError:  # also Price's ValidationError: a rate under 0, infinite or NaN
        common.fail(
            "--price must be IN/OUT or IN/OUT/CACHED: US dollars per million input, output "
            f"(and cached input) tokens, each a number from 0 (0.40/1.60), not {raw!r}",
            as_json=False,
            code=2,
        )


async def _read_line(*, prompt: bool = True) -> str | None:
    """The next line the user typed (a prompt on a terminal), or ``None`` at the end."""
    if prompt and sys.stdin.isatty():
        render.out.print(Text("you: ", style="bold"), end="")
    text = (await _next_line()).strip()
    return None if not text or text in {"exit", "quit"} else text


async def _next_line() -> str:
    """The next line of stdin (``""`` at its end), read by a daemon thread.

    Design note: ``asyncio.to_thread`` reads in the loop's executor, which ``asyncio.run``
    joins before it returns, so a Ctrl-C at the prompt ended the chat only once the user had
    typed a line. A daemon thread is not joined; it reads the unbuffered stream, so that it
    holds no lock that the interpreter's exit takes."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def settle(line: str, error: BaseException | None) -> None:
        if future.done():  # cancelled: nobody waits for it
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(line)

    def read() -> None:
        line, error = "", None
        try:
            line = _stdin_line()
        except Exception as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: the chat has ended
            loop.call_soon_threadsafe(settle, line, error)

    threading.Thread(target=read, name="agents-core chat input", daemon=True).start()
    return await future


def _stdin_line() -> str:
    raw = getattr(getattr(sys.stdin, "buffer", None), "raw", None)
    if not isinstance(raw, io.RawIOBase):  # a stream a caller put there (CliRunner's)
        return sys.stdin.readline()
    return raw.readline().decode(sys.stdin.encoding or "utf-8", sys.stdin.errors or "strict")


async def _answer(session_id: ObjectId, input_seq: int | None) -> str:
    """The turn's last assistant text (the answer)."""
    from agents_core.db import MessageRole, MessagesRepository

    latest = await MessagesRepository().find_by_session(session_id, 50)
    answers = [
        m.content
        for m in latest
        if m.role is MessageRole.assistant and m.content and m.seq > (input_seq or 0)
    ]
    return answers[-1] if answers else "(no answer)"
