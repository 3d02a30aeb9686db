"""The README's Python examples as one module: run by ``test_readme``, type-checked by ``make``.

A ```python block is a whole example (type-checked, and run unless it needs a server or a model
service); a ```py block is a fragment that builds on code of the reader's (neither).

``python -m tests.readme_examples PATH`` writes the examples to ``PATH`` as one async function
(they use top-level ``await`` and build on each other), which ``make typecheck`` runs through
``mypy --strict``: a user's code written as in the README type-checks with no assert and no
ignore.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    """The README's ```python blocks, in order."""
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def as_module(blocks: list[str], *, returns_locals: bool = False) -> str:
    """``blocks`` as the body of ``async def _example()``."""
    body = textwrap.indent("\n".join(blocks), "    ")
    if returns_locals:
        return (
            f"async def _example():  # type: ignore[no-untyped-def]\n{body}\n    return locals()\n"
        )
    return f'"""The README\'s examples (generated)."""\n\n\nasync def _example() -> None:\n{body}'


def main() -> None:
    target = Path(sys.argv[1])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(as_module(python_blocks()))


if __name__ == "__main__":
    main()
