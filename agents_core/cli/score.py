"""The scoring command of ``agents-core``: a user's or an evaluator's judgement of a run.

agents-core score RUN NAME VALUE [--comment TEXT] [--by WHO]   # 0.8 or -1: a value; pass: a label

``show RUN`` lists a run's scores; ``RunsRepository.add_score`` is the same from Python.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from agents_core.cli import common, render
from agents_core.cli.common import JsonOption

if TYPE_CHECKING:
    from bson import ObjectId

    from agents_core.db import Score

__all__ = ["number_or_label", "score"]


def number_or_label(value: str) -> float | str:
    """What VALUE means: a finite number (``0.8``, ``4``, ``-1e3``) is a value, anything else
    (``pass``, ``nan``, ``inf``) a label, as given."""
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


def score(
    run_id: Annotated[
        str,
        typer.Argument(
            metavar="RUN",
            help="The run's id, or its last digits (as tables print it), or its first.",
        ),
    ],
    name: Annotated[str, typer.Argument(help="What is judged: helpfulness, correct, …")],
    value: Annotated[
        str, typer.Argument(help="A finite number (a value), or anything else (a label).")
    ],
    comment: Annotated[str | None, typer.Option(help="Why (an explanation, a note).")] = None,
    by: Annotated[str | None, typer.Option(help="Who gives it: a user, an evaluator.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Score a run: a name and a number (0.8, -1) or a label (pass, fail)."""
    wanted = common.checked_id(run_id, as_json=as_json, what="a run")
    given = number_or_label(value)

    async def work() -> tuple[ObjectId, Score]:
        from agents_core.db import RunsRepository

        _, rid = await common.resolve(wanted, kinds=("run",))
        added = await RunsRepository().add_score(rid, name, given, comment=comment, by=by)
        return rid, added

    def display(result: tuple[ObjectId, Score]) -> None:
        from agents_core.trace import format_score

        rid, added = result
        if as_json:
            common.print_json({"run_id": rid, "score": added})
            return
        line = Text(f"scored run {rid}: ")
        line.append(added.name, style="bold")
        line.append(f" {format_score(added)}")
        if added.by is not None:
            line.append(f" by {added.by}")
        render.out.print(line)

    common.run(work, display, as_json=as_json, writes=True)
