"""What the repositories share: their connection, by-id commands, and records from documents.

Design note: the repositories speak to PyMongo's collections directly, one command per step,
with every write a single atomic server-side update (``$inc``, ``$addToSet``, ``$push``,
``arrayFilters``). Beanie owns the document classes, their registration and their indexes; its
query builder and per-document state are bypassed on purpose (they cost client CPU and sometimes
a round trip, and buy nothing for these narrow operations). What comes back from the server is
turned into frozen records by pydantic-core (``model_validate``, or a ``TypeAdapter`` for
lists): a document that no longer validates raises ``CorruptDocumentError``.
"""

from __future__ import annotations

import copy
import datetime
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import pydantic
from beanie import Document
from bson import ObjectId
from pymongo import DESCENDING, ReturnDocument

from agents_core.db.client import Connection, default_connection
from agents_core.db.documents import Record
from agents_core.db.errors import CorruptDocumentError, InvalidInputError, NotFoundError

R = TypeVar("R", bound=Record)

_ID_ONLY = {"_id": 1}
#: The windows of time ``newest_ids`` reads on a server whose sorts decode every match
#: (``ServerProfile.windowed_listings``): the last hour, then each 4 times as long as the one
#: before, back to 4**7 hours (about 1.9 years) ago. Older documents are not read there.
NEWEST_WINDOWS = tuple(datetime.timedelta(hours=4**n) for n in range(8))
#: Fields every Beanie document has that this layer never stores.
_BEANIE_FIELDS = frozenset({"id", "revision_id"})


class Repository:
    """Base of the repositories: the connection they work on (default: ``init_db``'s)."""

    __slots__ = ("_db",)

    def __init__(self, db: Connection | None = None) -> None:
        if db is not None and not isinstance(db, Connection):
            raise InvalidInputError("db", f"must be a Connection, not {type(db).__name__}")
        self._db = db

    @property
    def db(self) -> Connection:
        """The connection used, resolved at each call (so one built before ``init_db`` works)."""
        return self._db or default_connection()


def load(
    record: type[R],
    raw: Mapping[str, Any],
    collection: str,
    *,
    nested: Mapping[str, str] | None = None,
) -> R:
    """The ``record`` of a stored document (``CorruptDocumentError`` if it does not validate).

    ``nested`` names the collection of documents read along and put in a list field (e.g. a
    session's ``messages``), so that one of them that does not validate is reported as itself.
    """
    try:
        return record.model_validate(raw)
    except pydantic.ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        if nested and len(loc) > 1 and loc[0] in nested and isinstance(loc[1], int):
            raise _corrupt(exc, nested[str(loc[0])], raw[str(loc[0])][loc[1]], skip=2) from exc
        raise _corrupt(exc, collection, raw) from exc


def load_many(record: type[R], raws: Sequence[Mapping[str, Any]], collection: str) -> list[R]:
    """The records of stored documents, validated as one list by pydantic-core."""
    try:
        return _list_adapter(record).validate_python(raws)
    except pydantic.ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        index = loc[0] if loc and isinstance(loc[0], int) and loc[0] < len(raws) else None
        raise _corrupt(exc, collection, {} if index is None else raws[index]) from exc


@functools.cache
def _list_adapter(record: type[R]) -> pydantic.TypeAdapter[list[R]]:
    return pydantic.TypeAdapter(list[record])  # type: ignore[valid-type]


def _corrupt(
    exc: pydantic.ValidationError, collection: str, raw: Mapping[str, Any], *, skip: int = 0
) -> CorruptDocumentError:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"][skip:])
    ident = raw.get("_id", raw.get("id", "?"))
    return CorruptDocumentError(collection, ident, f"{where}: {error['msg']}")


async def insert(db: Connection, document: type[Document], record: type[R], **fields: Any) -> R:
    """Insert a new ``document`` from ``fields`` (already checked, in their stored form: records
    dumped); returns its record.

    The declared defaults fill in what ``fields`` leave out, so a field is declared once. What
    is stored is validated as a record first (so nothing is written that would not read back),
    and the record returned is the one a read would build: the two compare equal,
    ``model_fields_set`` too. Its ``_id`` is made on the client, so a retried insert cannot
    create a second copy.
    """
    stored = {**stored_defaults(document), "_id": ObjectId(), **fields}
    created = record.model_validate(stored)
    await db.collection(document).insert_one(stored)
    return created


def by_id(document: type[Document], id: ObjectId) -> dict[str, Any]:
    """The filter of the ``document`` with this ``_id``, if callers may see it.

    A document class may declare ``visible`` (a filter on plain fields): a session being
    deleted or forked does not exist for any by-id read or write.
    """
    visible = _VISIBLE.get(document, _UNKNOWN)
    if visible is _UNKNOWN:
        # Once per class: a missing attribute costs an exception in pydantic's metaclass.
        visible = _VISIBLE[document] = getattr(document, "visible", None)
    return {"_id": id, **visible} if visible else {"_id": id}


#: Per document class, its ``visible`` filter (``None``: every document is).
_VISIBLE: dict[type[Document], Mapping[str, Any] | None] = {}
_UNKNOWN: Mapping[str, Any] = {"": None}


async def get(
    db: Connection,
    document: type[Document],
    id: ObjectId,
    entity: str,
    projection: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The stored ``document`` with this ``_id`` (``NotFoundError`` if none). One command."""
    raw: dict[str, Any] | None = await db.collection(document).find_one(
        by_id(document, id), projection
    )
    if raw is None:
        raise NotFoundError(entity, id)
    return raw


async def update(
    db: Connection,
    document: type[Document],
    id: ObjectId,
    entity: str,
    change: Mapping[str, Any],
    projection: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Apply ``change`` atomically; the document after it (``NotFoundError`` if none)."""
    raw = await update_and_read(db, document, by_id(document, id), change, projection)
    if raw is None:
        raise NotFoundError(entity, id)
    return raw


async def update_and_read(
    db: Connection,
    document: type[Document],
    query: Mapping[str, Any],
    change: Mapping[str, Any],
    projection: Mapping[str, Any] | None = None,
    *,
    array_filters: list[Mapping[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """Apply ``change`` to the document ``query`` matches (by ``_id``, plus guards): the
    document as it is after the change, or ``None`` if nothing matched.

    One ``findAndModify``; on a server whose profile reads writes back (SecantusDB, see
    ``agents_core.db.server``), an ``update`` and then a ``find`` by ``_id``. That read may see
    a later write than ours, never an earlier one: the guarded fields (a final status) do not
    change again.
    """
    collection = db.collection(document)
    if not db.profile.read_back_writes:
        raw: dict[str, Any] | None = await collection.find_one_and_update(
            query,
            change,
            projection,
            array_filters=array_filters,
            return_document=ReturnDocument.AFTER,
        )
        return raw
    result = await collection.update_one(query, change, array_filters=array_filters)
    if result.matched_count == 0:
        return None
    found: dict[str, Any] | None = await collection.find_one({"_id": query["_id"]}, projection)
    return found


async def ids_by_prefix(
    db: Connection, document: type[Document], prefix: str, limit: int
) -> list[ObjectId]:
    """The ``_id`` of up to ``limit`` stored ``document``s whose hex form starts with ``prefix``
    (checked by the caller). One command: a range on the ``_id`` index, ids only.

    Every stored document counts, one that by-id reads hide included (a session being deleted),
    so that whoever names it by a prefix can finish what was interrupted.
    """
    low, high = ObjectId(prefix.ljust(24, "0")), ObjectId(prefix.ljust(24, "f"))
    cursor = db.collection(document).find({"_id": {"$gte": low, "$lte": high}}, _ID_ONLY)
    return [raw["_id"] for raw in await cursor.limit(limit).to_list()]


async def newest_ids(
    db: Connection,
    document: type[Document],
    field: str,
    limit: int,
    query: Mapping[str, Any] | None = None,
) -> list[ObjectId]:
    """The ``_id`` of the ``limit`` stored ``document``s matching ``query`` whose ``field`` (a
    time with an index that begins with ``query``'s fields and then it) is the latest, newest
    first.

    One sorted read on MongoDB: an index scan that stops after ``limit`` documents. On a server
    whose sorts decode every match (``windowed_listings``: SecantusDB), one read per window of
    ``NEWEST_WINDOWS`` going back in time (each a range of the index, so the server decodes
    that window's documents alone) until ``limit`` are found or the last window is read: at a
    steady rate, at most about 4 times the documents wanted, however large the collection.
    """
    collection = db.collection(document)
    order = [(field, DESCENDING)]
    where = dict(query or {})
    if not db.profile.windowed_listings:
        raws = await (
            collection.find(where, _ID_ONLY).sort(order).limit(limit).batch_size(limit).to_list()
        )
        return [raw["_id"] for raw in raws]
    found: list[ObjectId] = []
    now = datetime.datetime.now(datetime.UTC)
    bounds: dict[str, datetime.datetime] = {}  # none above the first: a clock running ahead
    for window in NEWEST_WINDOWS:
        wanted = limit - len(found)
        if wanted <= 0:
            break
        bounds["$gte"] = now - window
        raws = await (
            collection.find({**where, field: dict(bounds)}, _ID_ONLY)
            .sort(order)
            .limit(wanted)
            .batch_size(wanted)
            .to_list()
        )
        found += [raw["_id"] for raw in raws]
        bounds["$lt"] = bounds["$gte"]
    return found


async def require(db: Connection, document: type[Document], id: ObjectId, entity: str) -> None:
    """Raise ``NotFoundError`` unless a ``document`` with this ``_id`` exists."""
    await get(db, document, id, entity, _ID_ONLY)


def stored_defaults(document: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The default of every field ``document`` stores that has one (record and layer-only
    fields alike), fresh: what ``insert`` stores for the fields a caller leaves out, and what
    writes that build their documents themselves start from (``append_items``, a tool call
    pushed onto its run)."""
    defaults = _DEFAULTS.get(document)
    if defaults is None:
        defaults = _DEFAULTS[document] = _defaults_of(document)
    constants, makers = defaults
    fresh = {**constants}
    for name, make in makers:
        fresh[name] = make()
    return fresh


def _defaults_of(
    document: type[pydantic.BaseModel],
) -> tuple[dict[str, Any], tuple[tuple[str, Callable[[], Any]], ...]]:
    """Immutable defaults once; a maker for each default that must be made per document
    (factories such as ``utcnow``, and mutable values, copied)."""
    constants: dict[str, Any] = {}
    makers: list[tuple[str, Callable[[], Any]]] = []
    for name, info in document.model_fields.items():
        if name in _BEANIE_FIELDS or info.is_required():
            continue
        if info.default_factory is not None:
            # Called directly: FieldInfo.get_default inspects the factory's signature each time.
            makers.append((name, info.default_factory))  # type: ignore[arg-type]
        elif isinstance(info.default, _IMMUTABLE):
            constants[name] = info.default
        else:
            makers.append((name, functools.partial(copy.deepcopy, info.default)))
    return constants, tuple(makers)


_IMMUTABLE = (type(None), str, int, float, bool, bytes, ObjectId, datetime.datetime)

#: Per document class: its immutable defaults, and the makers of the others.
_DEFAULTS: dict[
    type[pydantic.BaseModel], tuple[dict[str, Any], tuple[tuple[str, Callable[[], Any]], ...]]
] = {}
