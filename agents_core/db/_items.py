"""Framework items (JSON objects such as the OpenAI Responses items) as stored messages.

An item is stored as it is, as a BSON document, so that it stays queryable (``item.type``,
``item.call_id``) and comes back equal (``==``) to what was appended. Two things stand in the
way and are handled here:

- **Field names.** MongoDB refuses or mishandles names that start with ``$`` or contain ``.``
  (and BSON cannot hold a NUL in a name), and JSON Schemas inside tool definitions or tool
  arguments carry such keys (``$schema``, ``$ref``, ``"a.b"``). Those names, and only those, are
  percent-escaped: ``%`` → ``%25``, ``$`` → ``%24``, ``.`` → ``%2E``, NUL → ``%00``. The mapping
  is injective (every ``%`` of an escaped name is itself escaped), so decoding is exact; an item
  that needed it is flagged (``ESCAPED``) so that the common item is returned without a walk.
- **Types.** Only JSON values are accepted (``dict`` with ``str`` keys, ``list``, ``str``,
  ``int`` within 64 bits, ``float``, ``bool``, ``None``): anything else would not come back
  equal (a tuple returns as a list, a naive datetime as an aware one), so it is refused up front
  with ``InvalidInputError`` before anything is written.
- **What BSON cannot hold.** ``item_fields`` encodes the fields that store an item once, before
  anything is written: a lone surrogate (half of a pair, as a model's cut-off answer leaves it)
  in a value or a name cannot be UTF-8, and an item whose fields pass ``MAX_ITEM_BYTES`` would
  make its message larger than a document may be. Both are ``InvalidInputError`` (field
  ``item``), never a driver error after a ``seq`` was reserved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import bson
from bson.errors import BSONError

from agents_core.db.errors import InvalidInputError
from agents_core.db.limits import MAX_ITEM_BYTES, MAX_ITEM_TEXT_LENGTH

__all__ = ["ESCAPED", "decode_item", "encode_item", "item_fields", "item_role", "item_text"]

#: Stored beside an item whose field names were escaped (never part of the model).
ESCAPED = "item_keys_escaped"

_NEEDS_ESCAPE = re.compile(r"[%$.\x00]")
_ESCAPES = {"%": "%25", "$": "%24", ".": "%2E", "\x00": "%00"}
_ESCAPED = re.compile(r"%(25|24|2E|00)")
_UNESCAPES = {"25": "%", "24": "$", "2E": ".", "00": "\x00"}
_INT64 = (-(2**63), 2**63 - 1)
#: Deepest nesting accepted (BSON and the server refuse documents nested beyond 100 levels).
_MAX_DEPTH = 90


def encode_item(item: object) -> tuple[dict[str, Any], bool]:
    """The stored form of ``item`` and whether any field name was escaped.

    Returns ``item`` itself when nothing needs escaping (no copy is made): one walk checks
    the types and looks for names to escape, and only an item that has some is copied.
    """
    if not isinstance(item, dict):
        raise InvalidInputError("item", f"must be a dict, not {type(item).__name__}")
    if not _check(item, 0):
        return item, False
    escaped: dict[str, Any] = _escape(item)
    return escaped, True


def item_fields(item: object) -> dict[str, Any]:
    """The fields of the message that stores ``item``: the item in its stored form, ``ESCAPED``,
    and what our views show of it (role, readable text, type, call id).

    Checked whole before anything is written (``InvalidInputError``, field ``item``): a JSON
    object, storable exactly, valid Unicode, and at most ``MAX_ITEM_BYTES`` of BSON.
    """
    stored, escaped = encode_item(item)
    assert isinstance(item, dict)  # encode_item refuses anything else
    kind = item.get("type", "message" if "role" in item else None)
    call_id = item.get("call_id")
    fields = {
        "role": item_role(item),
        "content": item_text(item),
        "item": stored,
        "item_type": kind if isinstance(kind, str) else None,
        "call_id": call_id if isinstance(call_id, str) else None,
        ESCAPED: escaped,
    }
    try:
        # Once per item, in C (~8 us for a 1 KiB item): the driver encodes it again to send it.
        size = len(bson.encode(fields))
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            "item", "is not valid Unicode (it holds a lone surrogate, half of a pair)"
        ) from exc
    except (BSONError, OverflowError, ValueError) as exc:  # checked by encode_item already
        raise InvalidInputError("item", f"cannot be stored: {exc}") from exc
    if size > MAX_ITEM_BYTES:
        raise InvalidInputError(
            "item", f"takes {size} bytes stored, more than {MAX_ITEM_BYTES} (a document's limit)"
        )
    return fields


def decode_item(stored: dict[str, Any], escaped: bool) -> dict[str, Any]:
    """The item as it was appended (``stored`` is used as it is when nothing was escaped)."""
    if not escaped:
        return stored
    decoded: dict[str, Any] = _decode(stored)
    return decoded


def _check(value: Any, depth: int) -> bool:
    """Refuse what is not a JSON value; ``True`` if some field name needs escaping."""
    kind = type(value)
    if kind is str or kind is bool or kind is float or value is None:
        return False
    if kind is int:
        if not _INT64[0] <= value <= _INT64[1]:
            raise InvalidInputError("item", "holds an integer beyond 64 bits")
        return False
    if depth > _MAX_DEPTH:
        raise InvalidInputError("item", f"is nested deeper than {_MAX_DEPTH} levels")
    needs = False
    if kind is dict:
        for key, entry in value.items():
            if type(key) is not str:
                raise InvalidInputError("item", f"has a non-string key {key!r}")
            if "$" in key or "." in key or "%" in key or "\x00" in key:
                needs = True
            if _check(entry, depth + 1):
                needs = True
        return needs
    if kind is list:
        for entry in value:
            if _check(entry, depth + 1):
                needs = True
        return needs
    raise InvalidInputError("item", f"holds a {kind.__name__}, which is not a JSON value")


def _escape(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {
            (_NEEDS_ESCAPE.sub(_escape_char, key) if _NEEDS_ESCAPE.search(key) else key): _escape(
                entry
            )
            for key, entry in value.items()
        }
    if kind is list:
        return [_escape(entry) for entry in value]
    return value


def _escape_char(match: re.Match[str]) -> str:
    return _ESCAPES[match.group(0)]


def _decode(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {
            (_ESCAPED.sub(_unescape, key) if "%" in key else key): _decode(entry)
            for key, entry in value.items()
        }
    if kind is list:
        return [_decode(entry) for entry in value]
    return value


def _unescape(match: re.Match[str]) -> str:
    return _UNESCAPES[match.group(1)]


# ---------------------------------------------------------------------------------------------
# What our own views show of an item


def item_role(item: Mapping[str, Any]) -> str:
    """The ``MessageRole`` value an item is shown with (its exact role stays in the item)."""
    role = item.get("role")
    if role in ("user", "assistant", "system"):
        return str(role)
    if role == "developer":
        return "system"
    kind = item.get("type")
    if isinstance(kind, str) and (kind.endswith("_output") or kind == "mcp_list_tools"):
        return "tool"
    if kind == "mcp_approval_response":
        return "user"
    return "assistant"


def item_text(item: Mapping[str, Any]) -> str:
    """A readable one-paragraph text of an item, at most ``MAX_ITEM_TEXT_LENGTH`` characters."""
    kind = item.get("type")
    if "role" in item and kind in (None, "message"):
        text = _parts_text(item.get("content"))
    elif kind == "function_call":
        text = f"{item.get('name', '?')}({_string(item.get('arguments'))})"
    elif kind == "reasoning":
        text = _parts_text(item.get("summary")) or "[reasoning]"
    elif isinstance(kind, str) and kind.endswith("_output") and "output" in item:
        text = _parts_text(item.get("output"))
    elif kind == "mcp_call":
        text = f"{item.get('server_label', '?')}.{item.get('name', '?')}("
        text += f"{_string(item.get('arguments'))}) -> {_string(item.get('output'))}"
    else:
        text = f"[{kind or 'item'}]"
    return text if len(text) <= MAX_ITEM_TEXT_LENGTH else text[: MAX_ITEM_TEXT_LENGTH - 1] + "…"


def _parts_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return _string(content)
    texts = []
    for part in content:
        if not isinstance(part, dict):
            texts.append(_string(part))
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("refusal"), str):
            texts.append(f"[refusal] {part['refusal']}")
        else:
            texts.append(f"[{part.get('type', 'part')}]")
    return " ".join(texts)


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else repr(value))
