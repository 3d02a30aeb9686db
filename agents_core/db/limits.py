"""Every fixed limit of the layer, in one place.

The limits a deployment may want to tune are settings (``agents_core.db.Settings``, read from
``AGENTS_CORE_*``): message size, tool calls per run, inline payload size and budget, payload
size, tools per agent. The ones here are fixed: they keep stored values within what MongoDB and
a double can hold, and every argument within what a caller could mean.
"""

from __future__ import annotations

from datetime import timedelta

__all__ = [
    "APPEND_GRACE",
    "CHUNK_BYTES",
    "FORK_BATCH_BYTES",
    "FORK_INSERT_BATCH",
    "FORK_WINDOW",
    "LISTING_CHUNK_IDS",
    "LISTING_TTL",
    "MAX_AMOUNT",
    "MAX_CHECKPOINT_BYTES",
    "MAX_ERROR_BYTES",
    "MAX_EXTERNAL_ID_LENGTH",
    "MAX_INSTRUCTIONS_BYTES",
    "MAX_ITEM_BYTES",
    "MAX_ITEM_TEXT_LENGTH",
    "MAX_LIMIT",
    "MAX_MODEL_CALLS_PER_RUN",
    "MAX_NAME_LENGTH",
    "MAX_SCORES_PER_RUN",
    "MAX_SCORE_COMMENT_BYTES",
    "MAX_STALE_AGE",
    "MAX_STEPS_PER_RUN",
    "MAX_STEP_DATA_BYTES",
    "MAX_TOKENS",
    "RECENT_IDS",
    "RECENT_KEYS_KEPT",
    "RUN_BATCH",
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
#: Most steps (handoffs, guardrails, custom spans, …) one framework's run embeds.
MAX_STEPS_PER_RUN = 1_000
#: Largest ``data`` of one step, in bytes of BSON: details to show, not a payload.
MAX_STEP_DATA_BYTES = 16 * 1024
#: Most scores one run embeds (``RunsRepository.add_score``): with the longest names, labels and
#: comments, about half a megabyte of the run document.
MAX_SCORES_PER_RUN = 100
#: Longest comment of a score, in bytes of UTF-8: an evaluator's reason, not a transcript.
MAX_SCORE_COMMENT_BYTES = 4 * 1024
#: Largest token total a run can hold (MongoDB's 64-bit integer).
MAX_TOKENS = 2**63 - 1
#: Largest stored size of an item appended with ``append_items``: the BSON of the fields that
#: hold it (the item, its readable text, type and call id), so that its message, with its other
#: fields (ids, ``seq``, times, an idempotency key: under 2 KiB), stays within MongoDB's 16 MiB
#: document limit.
MAX_ITEM_BYTES = 16 * 1024 * 1024 - 8 * 1024
#: Longest agent instructions accepted, in bytes of UTF-8.
MAX_INSTRUCTIONS_BYTES = 256 * 1024
#: Longest error text a run keeps, in bytes of UTF-8 (callers should truncate stack traces).
MAX_ERROR_BYTES = 64 * 1024
#: The largest ``older_than`` that ``RunsRepository.list_stale`` takes.
MAX_STALE_AGE = timedelta(days=36_500)
#: How many of its latest idempotency keys a session remembers: enough for repeats racing their
#: first writer (a repeat that comes later finds the stored message before it reserves anything).
RECENT_KEYS_KEPT = 64
#: How many of the newest sessions, runs and agents ``list_recent_ids`` reads: what a short id
#: (the end of an id, as the CLI prints it) is matched among.
RECENT_IDS = 500
#: Size of one payload chunk: far below 16 MB, and a handful fill one insert batch.
CHUNK_BYTES = 1024 * 1024
#: Largest LangGraph checkpoint (without its channel values, which are chunked when large) plus
#: its metadata, serialized, that the saver stores: both live in one document and again in its
#: head's copy, which must stay within MongoDB's 16 MiB with the head's other fields.
MAX_CHECKPOINT_BYTES = 15 * 1024 * 1024

# The conversation lifecycle (docs/lifecycle.md).

#: Ids per chunk of a listing's snapshot: at least ``MAX_LIMIT``, so a page spans two at most.
LISTING_CHUNK_IDS = 1_000
#: How long a session listing's cursor stays valid after its first page (a TTL index).
LISTING_TTL = timedelta(hours=1)
#: How long after a session's last append a deletion deletes its messages a second time.
APPEND_GRACE = timedelta(seconds=2)
#: Runs a deletion removes per batch (their ids are recorded on the session first).
RUN_BATCH = 1_000
#: ``seq`` values a fork reads per command.
FORK_WINDOW = 1_000
#: Most messages per insert while a fork copies a history: SecantusDB's cost per inserted
#: document grows with the batch (0.7 ms at 100, 1.5 ms at 1,000, measured), MongoDB's does not.
FORK_INSERT_BATCH = 250
#: Most message content (bytes) held for one insert while a fork copies a history.
FORK_BATCH_BYTES = 4 * 1024 * 1024
