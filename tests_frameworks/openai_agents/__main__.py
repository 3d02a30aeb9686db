"""``python -m tests_frameworks.openai_agents [sessions|tracing] [PYTEST ARGS...]``.

Downloads the source distribution of the installed (pinned) ``openai-agents`` into
``.cache/`` (``pip download --no-binary :all: --no-deps``; its code is never committed here)
and what its tests import beyond our dev extra (``requirements.txt``, into
``.cache/frameworks/test-deps``, on the path of those runs only), then runs its suites in
pytest processes of their own, from the SDK's root and with its
configuration, each with a plugin of ours:

- ``sessions`` (``plugin.py``): its session suites, its in-test sessions swapped for
  ``AgentsCoreSession``;
- ``tracing`` (``tracing_plugin.py``): its runner, tracing and guardrail suites with
  ``AgentsCoreTracingProcessor`` registered next to its own testing processor, every trace
  checked against the run we recorded.

Without a name, both, one after the other. Extra arguments go to pytest (e.g. ``-x``,
``-k run_sync``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

from tests_frameworks.openai_agents import plugin, tracing_plugin

PACKAGE = "openai-agents"
REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = REPO_ROOT / ".cache" / "frameworks"
#: Each run: its plugin module and the suites it runs.
RUNS = {
    "sessions": ("tests_frameworks.openai_agents.plugin", plugin.SUITES),
    "tracing": ("tests_frameworks.openai_agents.tracing_plugin", tracing_plugin.SUITES),
}


def sdk_source(pinned: str) -> Path:
    """The SDK's unpacked source distribution (downloaded once per version)."""
    root = CACHE / f"openai_agents-{pinned}"
    if (root / "pyproject.toml").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:"),
            *("--no-deps", f"{PACKAGE}=={pinned}", "--dest", str(CACHE)),
        ],
        check=True,
    )
    with tarfile.open(CACHE / f"openai_agents-{pinned}.tar.gz") as archive:
        archive.extractall(CACHE, filter="data")
    return root


def test_dependencies() -> Path:
    """What the SDK's tests import beyond our dev extra, installed apart (once per pin set)."""
    requirements = Path(__file__).with_name("requirements.txt")
    target = CACHE / "test-deps"
    stamp = target / ".requirements"
    if stamp.exists() and stamp.read_text() == requirements.read_text():
        return target
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade"),
            *("--target", str(target), "-r", str(requirements)),
        ],
        check=True,
    )
    stamp.write_text(requirements.read_text())
    return target


def main(argv: list[str]) -> int:
    names = [argv.pop(0)] if argv and argv[0] in RUNS else list(RUNS)
    pinned = version(PACKAGE)  # what the openai-agents extra installed (pinned in pyproject)
    root = sdk_source(pinned)
    paths = [str(REPO_ROOT), str(test_dependencies()), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    failed = 0
    for name in names:
        module, suites = RUNS[name]
        command = [
            *(sys.executable, "-m", "pytest", "-p", module, "-p", "no:cacheprovider"),
            *("-c", str(root / "pyproject.toml"), "--rootdir", str(root), "-q"),
            *suites,
            *argv,
        ]
        print(f"openai-agents {pinned}, {name}: {' '.join(suites)} (from {root})", flush=True)
        code = subprocess.run(command, cwd=root, env=env, check=False).returncode
        failed = failed or code
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
