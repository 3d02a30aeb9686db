"""Small, pinned patches that let pymongo-async-mock 0.1.3 over mongomock-ng 7.11.1 run Beanie 2.

Each patch is applied once, at import, to the mongomock-ng classes; none changes behaviour that
the wire server and the mock already agree on. ``tests/`` runs one contract suite on both, so a
patch that drifted from the truth would fail there.
"""

from __future__ import annotations

from typing import Any

from mongomock_ng.collection import Collection, Cursor
from mongomock_ng.database import Database
from pymongo import UpdateOne
from pymongo.results import BulkWriteResult

_original_list_collection_names = Database.list_collection_names
_original_find_and_modify = Collection._find_and_modify
_original_bulk_write = Collection.bulk_write
_original_copy_only_fields = Collection._copy_only_fields


# Beanie >= 2.1 calls list_collection_names(authorizedCollections=True, nameOnly=True).
def _list_collection_names(
    self: Database, filter: Any = None, session: Any = None, **_options: Any
) -> Any:
    return _original_list_collection_names(self, filter=filter, session=session)


# mongomock-ng's find_one_and_update drops array_filters; pass them on to its update.
def _find_and_modify(
    self: Collection,
    query: Any,
    projection: Any = None,
    update: Any = None,
    upsert: bool = False,
    sort: Any = None,
    return_document: Any = False,
    array_filters: Any = None,
    **kwargs: Any,
) -> Any:
    if not array_filters:
        return _original_find_and_modify(
            self, query, projection, update, upsert, sort, return_document, **kwargs
        )
    original_update = self._update

    def update_with_filters(*args: Any, **update_kwargs: Any) -> Any:
        update_kwargs["array_filters"] = array_filters
        return original_update(*args, **update_kwargs)

    self._update = update_with_filters  # type: ignore[method-assign]
    try:
        return _original_find_and_modify(
            self, query, projection, update, upsert, sort, return_document, **kwargs
        )
    finally:
        del self._update


# mongomock-ng's bulk_write refuses array_filters, which its update_one takes: a bulk of
# updates that use them runs as those update_ones, in order (what an ordered bulk does).
def _bulk_write(self: Collection, requests: Any, ordered: bool = True, **kwargs: Any) -> Any:
    requests = list(requests)
    if not any(isinstance(op, UpdateOne) and op._array_filters for op in requests):
        return _original_bulk_write(self, requests, ordered, **kwargs)
    matched = modified = 0
    for op in requests:
        if not isinstance(op, UpdateOne):
            raise NotImplementedError("a bulk with array_filters takes UpdateOne only")
        result = self.update_one(
            op._filter, op._doc, upsert=bool(op._upsert), array_filters=op._array_filters
        )
        matched += result.matched_count
        modified += result.modified_count
    counts = {"nInserted": 0, "nUpserted": 0, "nMatched": matched, "nModified": modified}
    return BulkWriteResult({**counts, "nRemoved": 0, "upserted": []}, True)


# mongomock-ng's projection pops "_id" from the projection it is given and puts it back (adding
# "_id": 1 when it was absent): the caller's dict changes, and a shared projection constant
# (SESSION_PROJECTION) would then go to every later read changed. It projects a copy instead.
def _copy_only_fields(
    self: Collection, doc: Any, fields: Any, container: Any, filter: Any = None
) -> Any:
    if isinstance(fields, dict):
        fields = dict(fields)
    return _original_copy_only_fields(self, doc, fields, container, filter)


# batch_size is a wire-level hint; the mock warns that it ignores it (an error under -W error).
def _batch_size(self: Cursor, count: int) -> Cursor:
    return self


def apply() -> None:
    """Install the patches (idempotent)."""
    setattr(Cursor, "batch_size", _batch_size)  # noqa: B010
    setattr(Database, "list_collection_names", _list_collection_names)  # noqa: B010
    setattr(Collection, "_find_and_modify", _find_and_modify)  # noqa: B010
    setattr(Collection, "bulk_write", _bulk_write)  # noqa: B010
    setattr(Collection, "_copy_only_fields", _copy_only_fields)  # noqa: B010
