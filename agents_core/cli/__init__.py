"""``agents-core``: run the demo and read what the data layer holds.

    agents-core demo                  # a scripted conversation through AgentRunner, with its trace
    agents-core chat                  # the demo's tools with a real (OpenAI-compatible) model
    agents-core sessions              # active sessions, newest first
    agents-core show ID               # a session (transcript, runs, tool calls), or one run's turn
    agents-core runs SESSION_ID       # the runs of one session
    agents-core runs --stale          # runs a crashed process left running (--abandon closes them)
    agents-core agents                # agents and their tools
    agents-core score RUN NAME VALUE  # a user's or an evaluator's score of a run (number or label)
    agents-core delete | fork | retention   # the conversation lifecycle
    agents-core serve | export-otel   # the trace view in a browser; a run as OpenTelemetry spans
    agents-core server status         # the embedded server of AGENTS_CORE_DATA (start, stop)

Every command takes ``--json`` for machine output (its errors are JSON on stderr too). With
``MONGODB_URI`` set it uses that server; otherwise the embedded SecantusDB of ``AGENTS_CORE_DATA``
(default ``./.agents-core``), started by the first command that needs it and shared by all.

The package, each module importing only those below it::

    app          the Typer application: options, and the commands registered
    read         sessions, show, runs, agents
    chat         demo, chat
    lifecycle    delete, fork, retention
    score        score
    trace        serve, export-otel
    server       server status, start, stop
    common       what every command shares: settings, connecting, ids, failures, JSON
    demo         the demo's agent, tools and scripted model (tests record it too)
    render       the two consoles and every Rich renderer

Design notes: what the database holds is never read as markup (see ``render``). Output is
printed before the connection is closed. Only public names of ``agents_core.db`` are used,
imported when a command runs (``--help``, ``--version`` and ``server`` stay fast).
"""

from agents_core.cli.app import app, main

__all__ = ["app", "main"]
