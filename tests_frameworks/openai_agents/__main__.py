"""``python -m tests_frameworks.openai_agents [PYTEST ARGS...]``: the SDK's session tests.

Downloads the source distribution of the installed (pinned) ``openai-agents`` into
``.cache/`` (``pip download --no-binary :all: --no-deps``; its code is never committed here),
then runs its session suites in a pytest process of their own, from the SDK's root and with
its configuration, with our plugin swapping its in-test sessions for ``AgentsCoreSession``.
Extra arguments go to pytest (e.g. ``-x``, ``-k run_sync``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

from tests_frameworks.openai_agents.plugin import SUITES

PACKAGE = "openai-agents"
REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = REPO_ROOT / ".cache" / "frameworks"


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


def main(argv: list[str]) -> int:
    pinned = version(PACKAGE)  # what the openai-agents extra installed (pinned in pyproject)
    root = sdk_source(pinned)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "tests_frameworks.openai_agents.plugin",
        "-p",
        "no:cacheprovider",
        "-c",
        str(root / "pyproject.toml"),
        "--rootdir",
        str(root),
        "-q",
        *SUITES,
        *argv,
    ]
    print(f"openai-agents {pinned}: {' '.join(SUITES)} (from {root})", flush=True)
    return subprocess.run(command, cwd=root, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
