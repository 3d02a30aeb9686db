"""What the connection talks to, and the one place that bends the write path to a server.

Usage::

    connection = await connect(uri)
    connection.profile            # MONGODB or SECANTUSDB, found out once by ``connect``
    await connect(uri, profile=MONGODB)   # say it instead (no ``buildInfo``)

``connect`` sends one ``buildInfo`` when it opens a connection (none when it is given
``profile``): SecantusDB answers with ``secantusVersion``; every other server (MongoDB, a
replica set, Atlas, mongos, mongoeco's wire server, the in-memory mock) gets the MongoDB
profile. Repositories read the profile's flags; nothing else in the layer asks which server
it is on, and nothing costs a command per operation.

Design note: the MongoDB profile sends the fewest commands. A write that returns its document
is one ``findAndModify``; a ``seq`` reservation is one ``findAndModify`` with ``$inc``; a
guarded write that must tell "not found" from "wrong state" reads once more, on that failure
path only. On MongoDB each command is a network round trip (0.5-2 ms in a data centre) and
``findAndModify`` by ``_id`` is an index lookup like ``update``.

The SecantusDB profile trades commands for flat latency, because of what was measured on
SecantusDB 0.7.0b3 (medians per call, PyMongo scripts; ``../shared/NOTES-wire-server.md``):
its ``findAndModify`` decodes every document of the collection, even by ``_id`` (1.8 ms with
100 documents, 22 ms at 1,000, 92 ms at 10,000; completing a tool call: 19 ms with 100 runs,
877 ms at 10,000, 4.4 s at 50,000), while ``update`` and ``find`` by ``_id`` stay at
0.5-1 ms at every size. So there:

- a write that returns its document is an ``update`` and then a ``find`` by ``_id``
  (``read_back_writes``): 10, 13 and 18 ms for the tool-call completion above;
- a ``seq`` reservation is a compare-and-set ``update`` from the ``last_seq`` this connection
  saw last (``seq_compare_and_set``), a ``find`` first on a session it has not seen, and the
  ``$inc`` only when another writer got there first: ``messages.create`` measured 11.5, 13.2
  and 13.9 ms at 100, 10,000 and 100,000 sessions, against 12.5 ms, 271 ms and 2.6 s with
  the ``findAndModify`` (``benchmarks/README.md``, "Scale");
- a session, its agent and its latest 50 messages are three ``find``s (``separate_reads``):
  its ``$lookup`` decodes the whole foreign collection, so the one ``aggregate`` that joins
  them took 25 ms against 3.7 ms for the three finds on a session of 1,000 messages, and
  234 ms against 8 ms on one of 10,000 (5,000 sessions). On MongoDB the ``$lookup``'s
  ``$match`` on ``session_id`` and a ``seq`` range in ``$expr`` is an index range scan
  (``$expr`` comparisons use indexes in ``$lookup`` since MongoDB 5.0);
- the trace view's run listing, newest first, is read in windows of time that widen until a
  page is full (``windowed_listings``): its sorted read decodes every run its filter matches
  (154 ms for the newest 50 of 2,000 runs), while a range on ``started_at`` decodes only that
  range. On MongoDB the sort is an index scan that stops at the page's end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

__all__ = ["MONGODB", "SECANTUSDB", "ServerProfile", "detect_profile"]


@dataclass(frozen=True, slots=True)
class ServerProfile:
    """How the repositories write on one kind of server (see the module's design note)."""

    #: ``"mongodb"`` or ``"secantusdb"``.
    name: str
    #: A write that returns its document is ``update`` + ``find`` by ``_id`` (two commands),
    #: not one ``findAndModify``.
    read_back_writes: bool
    #: A ``seq`` reservation is a compare-and-set from the last ``last_seq`` seen, not one
    #: ``findAndModify`` with ``$inc``.
    seq_compare_and_set: bool
    #: A session, its agent and its latest messages are read with a ``find`` each, not one
    #: ``aggregate`` that joins them with ``$lookup``.
    separate_reads: bool
    #: A listing sorted by time newest first is read in widening windows of its time range
    #: (the last hour, then 4 times as far back, ...), not in one sorted read of the whole
    #: range: the server sorts every document its filter matches, index or not.
    windowed_listings: bool = False


#: Every server but SecantusDB: the fewest commands.
MONGODB = ServerProfile(
    "mongodb", read_back_writes=False, seq_compare_and_set=False, separate_reads=False
)
#: SecantusDB, whose ``findAndModify`` and ``$lookup`` slow down with the collection's size.
SECANTUSDB = ServerProfile(
    "secantusdb",
    read_back_writes=True,
    seq_compare_and_set=True,
    separate_reads=True,
    windowed_listings=True,
)


async def detect_profile(database: AsyncDatabase[Any]) -> ServerProfile:
    """The profile of the server behind ``database``: one ``buildInfo`` command.

    A server that refuses ``buildInfo`` (none known does) gets the MongoDB profile.
    """
    try:
        info = await database.command("buildInfo")
    except OperationFailure:
        return MONGODB
    return SECANTUSDB if "secantusVersion" in info else MONGODB
