"""Checks applied to every value a caller passes in, before anything reaches the server.

A value is taken only in the type documented for it, so a dict such as ``{"$ne": None}`` can
never arrive in a filter where a string or an id belongs. Public: a service (and the runner)
can check its own input the same way, with the same ``InvalidInputError``/``InvalidIdError``.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from bson import ObjectId
from bson.errors import InvalidId

from agents_core.db._items import item_fields
from agents_core.db.documents.message import RequestedToolCall
from agents_core.db.errors import InvalidIdError, InvalidInputError
from agents_core.db.limits import MAX_AMOUNT, MAX_LIMIT, MAX_NAME_LENGTH

E = TypeVar("E", bound=StrEnum)

#: Characters a one-line name must not contain: control characters, lone surrogates, and the
#: Unicode line and paragraph separators.
_FORBIDDEN_IN_NAMES = frozenset({"Cc", "Cs", "Zl", "Zp"})
#: What an id is written in (``id_prefix``).
_HEX_DIGITS = frozenset(string.hexdigits)
#: A UTF-16 surrogate code point: never valid in a Python string that is to be encoded.
_SURROGATE = re.compile("[\ud800-\udfff]")


def object_id(value: object, entity: str) -> ObjectId:
    """``value`` (an ObjectId or 24 hex digits) as an ObjectId, or ``InvalidIdError``."""
    if isinstance(value, ObjectId):
        return value
    if isinstance(value, str) and len(value) == 24:
        try:
            return ObjectId(value)
        except (InvalidId, TypeError, ValueError):  # InvalidId is a BSONError, no ValueError
            pass
    raise InvalidIdError(entity, value)


def id_prefix(value: object, entity: str) -> str:
    """The start of an id: 1 to 24 hexadecimal digits, lower-cased, or ``InvalidIdError``."""
    if isinstance(value, str) and 1 <= len(value) <= 24 and set(value) <= _HEX_DIGITS:
        return value.lower()
    raise InvalidIdError(entity, value)


def name(value: object, field: str, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """A one-line identifier-like string: not blank, no control characters, bounded."""
    text = _string(value, field)
    if len(text) > max_length:
        raise InvalidInputError(field, f"longer than {max_length} characters")
    if text.isprintable() and not text.isspace() and text:
        # The common case, checked in C: a printable string holds no control characters,
        # separators or format characters, and one that is not all spaces is not blank.
        return text
    if all(char.isspace() or unicodedata.category(char) == "Cf" for char in text):
        # Blank also when all it holds is invisible (zero-width spaces, BOMs, direction marks).
        raise InvalidInputError(field, "must not be empty or blank")
    if any(unicodedata.category(char) in _FORBIDDEN_IN_NAMES for char in text):
        raise InvalidInputError(field, "must not contain control characters or line breaks")
    return text


def optional_name(value: object, field: str) -> str | None:
    return None if value is None else name(value, field)


#: What ``title_from`` turns into a space (line breaks, tabs, other control characters) and
#: drops (invisible format characters, lone surrogates).
_TITLE_SPACES = frozenset({"Cc", "Zl", "Zp", "Zs"})
_TITLE_DROPPED = frozenset({"Cf", "Cs"})


def title_from(text: str, *, max_length: int = MAX_NAME_LENGTH) -> str | None:
    """A one-line title made of free text (a conversation's first message), which ``name``
    accepts: runs of spaces, line breaks and other control characters become one space,
    invisible format characters (zero-width spaces, direction marks) and lone surrogates are
    dropped, and a text longer than ``max_length`` characters is cut there, its last one an
    ellipsis. ``None`` when nothing readable is left (an empty or blank text)."""
    # The characters a title can show, and more for the spaces that collapse and those dropped.
    head = text[: max_length * 4]
    cut = len(text) > len(head)
    if not (head.isprintable() and head.isascii()):
        kept = []
        for char in head:
            category = unicodedata.category(char)
            if category in _TITLE_SPACES or char.isspace():
                kept.append(" ")
            elif category not in _TITLE_DROPPED:
                kept.append(char)
        head = "".join(kept)
    line = " ".join(head.split())
    if not line:
        return None
    if len(line) > max_length or cut:
        line = line[: max_length - 1].rstrip() + "\u2026"
    return line


def text(value: object, field: str, *, max_bytes: int) -> str:
    """Free text (message content, tool input/output): any valid Unicode up to ``max_bytes``."""
    return encoded_text(value, field, max_bytes=max_bytes)[0]


def encoded_text(value: object, field: str, *, max_bytes: int) -> tuple[str, bytes]:
    """``text``, with its UTF-8 bytes (for callers that size or store them: encoded once)."""
    string = _string(value, field)
    if len(string) > max_bytes:  # cheap bound first: a character is at least one byte
        raise InvalidInputError(field, f"larger than {max_bytes} bytes of UTF-8")
    try:
        data = string.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(field, "is not valid Unicode (lone surrogate)") from exc
    if len(data) > max_bytes:
        raise InvalidInputError(field, f"larger than {max_bytes} bytes of UTF-8")
    return string, data


def enum(cls: type[E], value: object, field: str, *, allowed: frozenset[E] | None = None) -> E:
    """A member of ``cls`` given as the member or its string value, optionally restricted."""
    if isinstance(value, str):
        try:
            member = cls(value)
        except ValueError:
            member = None
        if member is not None and (allowed is None or member in allowed):
            return member
    choices = sorted(m.value for m in (allowed or frozenset(cls)))
    raise InvalidInputError(field, f"must be one of {choices}, not {value!r}")


def count(value: object, field: str) -> int:
    """A non-negative integer (``bool`` is refused although it is an ``int``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(field, f"must be an integer, not {type(value).__name__}")
    if value < 0:
        raise InvalidInputError(field, "must not be negative")
    if value > 2**62:
        raise InvalidInputError(field, "is absurdly large")
    return value


def number(value: object, field: str) -> float:
    """A finite number (an ``int`` or a ``float``; ``bool`` is refused), as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(field, f"must be a number, not {type(value).__name__}")
    try:
        result = float(value)
    except OverflowError:  # an int beyond the largest double
        raise InvalidInputError(field, "is absurdly large") from None
    if not math.isfinite(result):
        raise InvalidInputError(field, "must be finite")
    return result


def amount(value: object, field: str) -> float:
    """A finite, non-negative number up to ``MAX_AMOUNT``."""
    checked = number(value, field)
    if checked < 0:
        raise InvalidInputError(field, "must not be negative")
    if checked > MAX_AMOUNT:
        raise InvalidInputError(field, "is absurdly large")
    return checked


def limit(value: object, field: str = "limit", *, minimum: int = 1) -> int:
    """A page size between ``minimum`` and ``MAX_LIMIT``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(field, f"must be an integer, not {type(value).__name__}")
    if not minimum <= value <= MAX_LIMIT:
        raise InvalidInputError(field, f"must be between {minimum} and {MAX_LIMIT}")
    return value


def valid_unicode(value: object, field: str) -> None:
    """Refuse a lone surrogate (``"\\ud83d"``, what a cut-off model answer leaves) in any string
    of ``value``, key or value, at any depth of its dicts, lists, tuples and sets: UTF-8, hence
    BSON and JSON, cannot encode it, so it would fail later, after something was written."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise InvalidInputError(field, "is not valid Unicode (lone surrogate)")
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            pending.extend(item)


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(field, f"must be a string, not {type(value).__name__}")
    return value


def items(value: object) -> list[dict[str, Any]]:
    """Framework items (a list of JSON objects) as the fields of the messages that store them,
    checked as ``MessagesRepository.append_items`` checks them (``db/_items.py``): each one a
    JSON object that is stored exactly, valid Unicode (no lone surrogate) and of a size a
    document can hold. A caller that writes something else first (a framework adapter that
    creates its session) checks the items with this before it does."""
    if isinstance(value, Mapping | str | bytes) or not isinstance(value, Sequence):
        raise InvalidInputError("items", "must be a list of items")
    return [item_fields(item) for item in value]


def requested_tool_calls(value: object, *, max_bytes: int) -> list[dict[str, str]]:
    """The tool calls a model asked for, each with a name, an id and bounded arguments, in
    their stored form (what ``RequestedToolCall`` validates: the message's record checks them
    once more as it is built)."""
    if not isinstance(value, list | tuple):
        raise InvalidInputError("requested_tool_calls", "must be a list of RequestedToolCall")
    calls: list[dict[str, str]] = []
    size = 0
    for call in value:
        if not isinstance(call, RequestedToolCall):
            raise InvalidInputError("requested_tool_calls", "must hold RequestedToolCall records")
        # getattr: a record built with model_construct may lack fields or hold anything.
        arguments, data = encoded_text(
            getattr(call, "arguments", None), "requested_tool_calls.arguments", max_bytes=max_bytes
        )
        size += len(data)
        calls.append(
            {
                "id": name(getattr(call, "id", None), "requested_tool_calls.id"),
                "name": name(getattr(call, "name", None), "requested_tool_calls.name"),
                "arguments": arguments,
            }
        )
    if size > max_bytes:
        raise InvalidInputError("requested_tool_calls", f"larger than {max_bytes} bytes")
    return calls
