"""Which messages of a batch a reader may see: the one rule, for every reader (the history
reads of ``messages`` and ``search``).

A batch (``MessagesRepository.append_items``, ``create_batch``) is shown only once its last
message exists: each message carries ``batch_end_seq``, and a message whose batch end is not
stored (yet, or ever: its insert failed) is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

__all__ = ["whole_batches"]

#: A stored message as a reader holds it (a dict, or a read-only mapping).
_M = TypeVar("_M", bound=Mapping[str, Any])


async def whole_batches(
    messages: AsyncCollection[Any],
    session_id: ObjectId,
    raws: Sequence[_M],
    *,
    present: Iterable[int] = (),
) -> list[_M]:
    """``raws`` (messages of one session) less the messages of batches whose last message does
    not exist (yet): one ``seq`` lookup for the ends neither in ``raws`` nor among the
    ``present`` seqs (known to exist). What every reader shows of a batch (search too)."""
    present = {*present, *(raw["seq"] for raw in raws)}
    ends = {raw["batch_end_seq"] for raw in raws if raw.get("batch_end_seq") is not None}
    unknown = sorted(ends - present)
    if unknown:
        landed = await messages.find(
            {"session_id": session_id, "seq": {"$in": unknown}}, {"seq": 1, "_id": 0}
        ).to_list()
        present.update(raw["seq"] for raw in landed)
    if ends <= present:
        return list(raws)
    return [raw for raw in raws if (end := raw.get("batch_end_seq")) is None or end in present]
