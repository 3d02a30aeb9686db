"""The errors every repository method raises, and the one place driver errors are translated.

::

    DatabaseError
    ├── NotFoundError            an entity with that id (or name) does not exist
    ├── AlreadyExistsError       a unique key is taken (an agent's name)
    ├── InvalidIdError           a malformed id (also a ValueError)
    ├── InvalidInputError        a value the layer refuses (also a ValueError)
    ├── InvalidStateError        the entity exists but is not in a state that allows the call
    ├── CorruptDocumentError     a stored document no longer validates (names collection and _id)
    ├── NotInitializedError      a repository was used before ``init_db()``
    ├── AlreadyInitializedError  ``init_db()`` again without ``replace=True``
    ├── WrongEventLoopError      a connection used from an event loop it was not made on
    └── DatabaseUnavailableError the server could not be reached in time

No PyMongo, bson or pydantic exception escapes a repository method: :func:`translate_errors`
wraps each of them and re-raises the driver's exception as the ``__cause__``. The text of a
translated error keeps the server's message and code, never the server's whole reply (PyMongo
appends it as ``full error: {...}``, with ``$clusterTime`` signatures and, for a refused
insert, the document itself): the reply stays on the ``__cause__``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import pydantic
from bson.errors import BSONError
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

__all__ = [
    "AlreadyExistsError",
    "AlreadyInitializedError",
    "CorruptDocumentError",
    "DatabaseError",
    "DatabaseUnavailableError",
    "InvalidIdError",
    "InvalidInputError",
    "InvalidStateError",
    "NotFoundError",
    "NotInitializedError",
    "WrongEventLoopError",
    "translate",
    "translate_errors",
]


class DatabaseError(Exception):
    """Base class of every error raised by ``agents_core.db``."""


class NotFoundError(DatabaseError):
    """No ``entity`` with this ``id`` exists."""

    def __init__(self, entity: str, id: object) -> None:
        self.entity = entity
        self.id = id
        super().__init__(f"{entity} {id!s} not found")


class AlreadyExistsError(DatabaseError):
    """An ``entity`` whose unique ``key`` has this ``value`` exists already."""

    def __init__(self, entity: str, key: str, value: object) -> None:
        self.entity = entity
        self.key = key
        self.value = value
        super().__init__(f"{entity} with {key}={value!r} already exists")


class InvalidIdError(DatabaseError, ValueError):
    """``value`` is not a well-formed id of an ``entity``."""

    def __init__(self, entity: str, value: object) -> None:
        self.entity = entity
        self.value = value
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        super().__init__(f"invalid {entity} id: {shown}")


class InvalidInputError(DatabaseError, ValueError):
    """A value passed to the layer is refused (wrong type, out of range, too large)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"invalid {field}: {reason}")


class InvalidStateError(DatabaseError):
    """The ``entity`` exists but its state forbids the operation (e.g. completing it twice)."""

    def __init__(self, entity: str, id: object, reason: str) -> None:
        self.entity = entity
        self.id = id
        self.reason = reason
        super().__init__(f"{entity} {id!s}: {reason}")


class NotInitializedError(DatabaseError):
    """A repository was used before ``await init_db()`` (or after ``close_db()``)."""

    def __init__(self) -> None:
        super().__init__("agents_core.db is not initialised: call `await init_db()` first")


class AlreadyInitializedError(DatabaseError):
    """``init_db`` was called while a connection is in use, without ``replace=True``."""

    def __init__(self) -> None:
        super().__init__(
            "agents_core.db is initialised already: pass `replace=True` to switch to another "
            "connection, or `await close_db()` first"
        )


class CorruptDocumentError(DatabaseError):
    """A stored document of ``collection`` no longer has the shape this version stores.

    Not the caller's fault (unlike ``InvalidInputError``): something else wrote the document, or
    it predates a change of schema.
    """

    def __init__(self, collection: str, id: object, reason: str) -> None:
        self.collection = collection
        self.id = id
        self.reason = reason
        super().__init__(f"corrupt document {id!s} in {collection}: {reason}")


class WrongEventLoopError(DatabaseError):
    """A connection was used from an event loop other than the one it was opened on.

    PyMongo's async client belongs to the loop it was created on. Open one connection per loop
    (``await connect(...)`` in that loop, then pass it to the repositories), or keep the layer's
    calls on one loop.
    """

    def __init__(self) -> None:
        super().__init__(
            "this agents_core connection was opened on another event loop: open one per loop "
            "with `await agents_core.db.connect(...)` and pass it to the repositories"
        )


class DatabaseUnavailableError(DatabaseError):
    """The server could not be reached (or stopped answering) within the configured timeout.

    ``reason`` is what went wrong (the driver's words, without its topology dump). Raised by
    ``connect``/``init_db``, it also names the ``uri`` tried (its password masked) and says what
    to try instead (``hint``): the text reads ``cannot reach MongoDB at <uri>: <reason>;
    <hint>``, on one line.
    """

    def __init__(self, reason: str, *, uri: str | None = None, hint: str | None = None) -> None:
        self.reason = reason
        self.uri = uri
        self.hint = hint
        text = reason if uri is None else f"cannot reach MongoDB at {uri}: {reason}"
        super().__init__(text if hint is None else f"{text}; {hint}")


P = ParamSpec("P")
T = TypeVar("T")


def translate(exc: BaseException) -> DatabaseError | None:
    """The ``DatabaseError`` that a driver, bson or pydantic exception stands for, if any."""
    if isinstance(exc, DatabaseError):
        return exc
    if isinstance(exc, ConnectionFailure | WTimeoutError):
        kind = "timed out" if isinstance(exc, ServerSelectionTimeoutError) else "failed"
        return DatabaseUnavailableError(f"MongoDB connection {kind}: {_server_message(exc)}")
    if isinstance(exc, DocumentTooLarge):
        return InvalidInputError("document", f"too large for MongoDB: {_server_message(exc)}")
    if isinstance(exc, DuplicateKeyError):
        return DatabaseError(f"unexpected duplicate key: {_server_message(exc)}")
    if isinstance(exc, PyMongoError):
        return DatabaseError(f"MongoDB error: {_server_message(exc)}")
    if isinstance(exc, BSONError):
        return InvalidInputError("document", f"cannot be encoded as BSON: {_first_line(exc)}")
    if isinstance(exc, pydantic.ValidationError):
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or exc.title
        return InvalidInputError(field, error["msg"])
    return None


def translate_errors(func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorate a repository coroutine so that only ``DatabaseError``s leave it."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await func(*args, **kwargs)
        except DatabaseError:
            raise
        except (PyMongoError, BSONError, pydantic.ValidationError) as exc:
            translated = translate(exc)
            assert translated is not None
            raise translated from exc

    return wrapper


def _server_message(exc: BaseException) -> str:
    """What the server said (its ``errmsg`` and ``code``), without the rest of its reply.

    A bulk write's own message is only "batch op errors occurred": its first write error (or
    write concern error) is what went wrong.
    """
    if not isinstance(exc, OperationFailure):
        return _first_line(exc)
    details = exc.details or {}
    message, code = details.get("errmsg"), exc.code
    if isinstance(exc, BulkWriteError):
        errors = details.get("writeErrors") or details.get("writeConcernErrors") or [{}]
        first = errors[0] if isinstance(errors[0], dict) else {}
        message, code = first.get("errmsg"), first.get("code", code)
    if not isinstance(message, str) or not message:
        message = _first_line(exc)
    line = _first_line(ValueError(message))
    return line if code is None else f"{line} (code {code})"


def _first_line(exc: BaseException) -> str:
    """The driver's message without its topology dump: first line, before any timeout details."""
    text = str(exc)
    line = text.splitlines()[0] if text else type(exc).__name__
    for detail in (
        ", full error: ",
        " (configured timeouts",
        ", Timeout:",
        ", Topology Description",
    ):
        line = line.split(detail, 1)[0]
    return line[:300]
