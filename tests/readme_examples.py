"""The README's Python examples as one module, and the integration docs' scripts: run by
``test_readme`` and ``test_doc_examples``, type-checked by ``make``.

In the README, a ```python block is a whole example (type-checked, and run unless it needs a
server or a model service); a ```py block is a fragment that builds on code of the reader's
(neither). In the integration docs (``DOCS``) each ```python block is a whole script, run as a
reader runs it (``python example.py``: a process of its own, the embedded server, no API key).

``python -m tests.readme_examples PATH [DIRECTORY]`` writes the README's examples to ``PATH``
as one async function (they use top-level ``await`` and build on each other), and with
``DIRECTORY`` each doc's scripts there (``openai_agents_1.py``, …), which ``make typecheck``
runs through ``mypy --strict``: a user's code written as in the docs type-checks with no
assert and no ignore.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: The integration docs, each starting with a script that runs on a fresh machine.
DOCS = (ROOT / "docs" / "openai-agents.md", ROOT / "docs" / "langgraph.md")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)


def python_blocks(path: Path = README) -> list[str]:
    """The ```python blocks of ``path`` (the README by default), in order."""
    return [body for kind, body in _FENCE.findall(path.read_text()) if kind == "python"]


def opening_block(path: Path, heading: str | None = None) -> tuple[str, str]:
    """The language and text of the first fenced block of ``path``, or of its section
    ``heading`` (a line of the doc that starts with it): what a reader meets first."""
    text = path.read_text()
    if heading is not None:
        (start,) = [m.start() for m in re.finditer(rf"^{re.escape(heading)}", text, re.M)]
        text = text[start:]
    found = _FENCE.search(text)
    assert found is not None, f"no code block in {path.name} {heading or ''}"
    return found.group(1), found.group(2)


def as_module(blocks: list[str], *, returns_locals: bool = False) -> str:
    """``blocks`` as the body of ``async def _example()``."""
    body = textwrap.indent("\n".join(blocks), "    ")
    if returns_locals:
        return (
            f"async def _example():  # type: ignore[no-untyped-def]\n{body}\n    return locals()\n"
        )
    return f'"""The README\'s examples (generated)."""\n\n\nasync def _example() -> None:\n{body}'


def script_name(doc: Path, n: int) -> str:
    """The file name of the ``n``-th script (from 1) of ``doc``: ``openai_agents_1.py``."""
    return f"{doc.stem.replace('-', '_')}_{n}.py"


def main() -> None:
    target = Path(sys.argv[1])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(as_module(python_blocks()))
    if len(sys.argv) > 2:
        scripts = Path(sys.argv[2])
        scripts.mkdir(parents=True, exist_ok=True)
        for doc in DOCS:
            for n, block in enumerate(python_blocks(doc), start=1):
                (scripts / script_name(doc, n)).write_text(block)


if __name__ == "__main__":
    main()
