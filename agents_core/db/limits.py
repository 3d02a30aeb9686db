"""Every fixed limit of the layer, in one place.

The limits a deployment may want to tune are settings (``agents_core.db.Settings``, read from
``AGENTS_CORE_*``): message size, tool calls per run, inline payload size and budget, payload
size, tools per agent. The ones here are fixed: they keep stored values within what MongoDB and
a double can hold, and every argument within what a caller could mean.
"""

from __future__ import annotations

from datetime import timedelta

__all__ = [
    "CHUNK_BYTES",
    "MAX_AMOUNT",
    "MAX_ERROR_BYTES",
    "MAX_EXTERNAL_ID_LENGTH",
    "MAX_INSTRUCTIONS_BYTES",
    "MAX_ITEM_TEXT_LENGTH",
    "MAX_LIMIT",
    "MAX_MODEL_CALLS_PER_RUN",
    "MAX_NAME_LENGTH",
    "MAX_STALE_AGE",
    "MAX_TOKENS",
    "RECENT_KEYS_KEPT",
]

#: Longest name (agent name, tool name, title, user id, model, idempotency key) in characters.
MAX_NAME_LENGTH = 200
#: Longest external id (``SessionsRepository.get_or_create_by_external_id``) in characters: a
#: framework's own session id, which may be longer than a name.
MAX_EXTERNAL_ID_LENGTH = 1_000
#: Longest readable text kept in ``content`` of an item appended with ``append_items`` (the item
#: itself is kept whole), in characters.
MAX_ITEM_TEXT_LENGTH = 4_096
#: Largest ``limit`` a listing accepts.
MAX_LIMIT = 1_000
#: Largest amount (cost, duration) one call may add: beyond 2**53 a double stops counting units,
#: and totals of larger amounts run into infinity on the server.
MAX_AMOUNT = float(2**53)
#: Most model calls one run embeds (the runner's ``max_steps`` bounds it far lower).
MAX_MODEL_CALLS_PER_RUN = 1_000
#: Largest token total a run can hold (MongoDB's 64-bit integer).
MAX_TOKENS = 2**63 - 1
#: Longest agent instructions accepted, in bytes of UTF-8.
MAX_INSTRUCTIONS_BYTES = 256 * 1024
#: Longest error text a run keeps, in bytes of UTF-8 (callers should truncate stack traces).
MAX_ERROR_BYTES = 64 * 1024
#: The largest ``older_than`` that ``RunsRepository.list_stale`` takes.
MAX_STALE_AGE = timedelta(days=36_500)
#: How many of its latest idempotency keys a session remembers: enough for repeats racing their
#: first writer (a repeat that comes later finds the stored message before it reserves anything).
RECENT_KEYS_KEPT = 64
#: Size of one payload chunk: far below 16 MB, and a handful fill one insert batch.
CHUNK_BYTES = 1024 * 1024
