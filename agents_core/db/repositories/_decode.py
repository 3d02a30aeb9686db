"""Models from documents the server returns, without paying for a full validation each time.

Design note: a Beanie document costs ~43 µs to build through ``model_validate`` (its
``__init__`` and private-state set-up run per instance), more than the driver needs to fetch
it; even a plain model pays for Python-level validators (Beanie's ``PydanticObjectId``, our UTC
datetimes). What the layer reads back is what it wrote, so ``decode`` builds the model directly
from a per-class plan, compiled into one function: each field's key (``_id`` for ``id``), its
default, the exact types its stored value may have, and the one conversion it needs (a string
enum, a UTC datetime, a nested model). Anything the plan does not expect (a document written by
someone else, a wrong type) falls back to ``model_validate``, which validates it in full and
raises as usual. About 6 µs a message, 5 µs a tool call.
"""

from __future__ import annotations

import copy
import enum
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from beanie import Document
from bson import ObjectId
from pydantic import BaseModel
from pydantic.fields import FieldInfo

__all__ = ["decode", "new_document"]

M = TypeVar("M", bound=BaseModel)

Convert = Callable[[Any], Any]
_MISSING = object()


class _Unexpected(Exception):
    """The document is not what the plan expects: validate it in full instead."""


def decode(model: type[M], raw: Mapping[str, Any]) -> M:
    """A ``model`` instance of ``raw`` (a document as the driver returned it)."""
    plan = _PLANS.get(model) or _plan(model)
    try:
        return cast(M, plan.build(raw))
    except (_Unexpected, ValueError, TypeError, KeyError, AttributeError):
        return model.model_validate(raw)


def new_document(model: type[Document], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The stored form of a new ``model`` with ``fields`` (checked by the caller) and defaults.

    Its ``_id`` is made here, on the client, so that a retried insert cannot store a copy.
    """
    stored: dict[str, Any] = {}
    for name, key, default, _, _ in _plan(model).fields:
        if name in _NOT_STORED:
            continue
        value = fields[name] if name in fields else default()
        stored[key] = value.value if isinstance(value, enum.Enum) else value
    if stored.get("_id") is None:
        stored["_id"] = ObjectId()
    return stored


#: Beanie's optimistic-locking field, which these documents do not use (``use_revision=False``).
_NOT_STORED = frozenset({"revision_id"})


def _nested(model: type[BaseModel]) -> Convert:
    return lambda value: decode(model, value)


@dataclass(frozen=True, slots=True)
class _Plan:
    #: (attribute, stored key, default maker, exact types accepted or None, conversion or None).
    fields: tuple[tuple[str, str, Callable[[], Any], tuple[type, ...] | None, Convert | None], ...]
    #: The builder compiled from ``fields`` (raises ``_Unexpected`` on a surprise).
    build: Callable[[Mapping[str, Any]], BaseModel]


_PLANS: dict[type[BaseModel], _Plan] = {}


def _plan(model: type[BaseModel]) -> _Plan:
    plan = _PLANS.get(model)
    if plan is None:
        fields = tuple(
            (name, info.alias or name, _default(info), *_reader(info.annotation))
            for name, info in model.model_fields.items()
        )
        plan = _PLANS[model] = _Plan(fields, _compile(model, fields))
    return plan


def _compile(
    model: type[BaseModel],
    fields: tuple[tuple[str, str, Callable[[], Any], tuple[type, ...] | None, Convert | None], ...],
) -> Callable[[Mapping[str, Any]], BaseModel]:
    """One straight-line function per class, as ``dataclasses`` writes ``__init__``: a loop
    over the plan costs about as much again as the work itself. For ``Message`` it reads::

        def build(raw):
            if not raw.keys() <= KEYS:
                raise Unexpected
            get = raw.get
            v0 = get('_id', MISSING)
            if v0 is MISSING:
                v0 = default_0()
            elif v0 is not None:
                if type(v0) not in kinds_0:
                    raise Unexpected
            ...
            instance = new(cls)
            setattr(instance, '__dict__', {'id': v0, ...})
            ...
    """
    env: dict[str, Any] = {
        "MISSING": _MISSING,
        "Unexpected": _Unexpected,
        "KEYS": frozenset(key for _, key, _, _, _ in fields),
        "new": model.__new__,
        "cls": model,
        "setattr": object.__setattr__,
        "PRIVATE": {n: a.default for n, a in model.__private_attributes__.items()},
    }
    lines = ["def build(raw):", "    if not raw.keys() <= KEYS:", "        raise Unexpected"]
    lines.append("    get = raw.get")
    for i, (_, key, default, kinds, convert) in enumerate(fields):
        env[f"default_{i}"], env[f"kinds_{i}"], env[f"convert_{i}"] = default, kinds, convert
        lines += [f"    v{i} = get({key!r}, MISSING)", f"    if v{i} is MISSING:"]
        lines.append(f"        v{i} = default_{i}()")
        if kinds is not None or convert is not None:
            lines.append(f"    elif v{i} is not None:")
        if kinds is not None and len(kinds) == 1:
            env[f"kind_{i}"] = kinds[0]
            lines += [f"        if type(v{i}) is not kind_{i}:", "            raise Unexpected"]
        elif kinds is not None:
            lines += [f"        if type(v{i}) not in kinds_{i}:", "            raise Unexpected"]
        if convert is not None:
            lines.append(f"        v{i} = convert_{i}(v{i})")
    values = ", ".join(f"{name!r}: v{i}" for i, (name, *_) in enumerate(fields))
    names = ", ".join(repr(name) for name, *_ in fields)
    private = ", ".join(
        f"{name!r}: private_{name}()"
        for name, attribute in model.__private_attributes__.items()
        if attribute.default_factory is not None
    )
    for name, attribute in model.__private_attributes__.items():
        env[f"private_{name}"] = attribute.default_factory
    lines += [
        "    instance = new(cls)",
        f"    setattr(instance, '__dict__', {{{values}}})",
        f"    setattr(instance, '__pydantic_fields_set__', {{{names}}})",
        "    setattr(instance, '__pydantic_extra__', None)",
        (
            f"    setattr(instance, '__pydantic_private__', {{**PRIVATE, {private}}})"
            if model.__private_attributes__
            else "    setattr(instance, '__pydantic_private__', None)"  # as pydantic leaves it
        ),
        "    return instance",
    ]
    exec("\n".join(lines), env)
    build: Callable[[Mapping[str, Any]], BaseModel] = env["build"]
    return build


def _default(info: FieldInfo) -> Callable[[], Any]:
    if info.is_required():

        def missing() -> Any:
            raise _Unexpected

        return missing
    # Factories that take the validated data are not used by these models.
    return _factory(info.default, cast(Callable[[], Any] | None, info.default_factory))


def _factory(default: Any, default_factory: Callable[[], Any] | None) -> Callable[[], Any]:
    """A fast maker of a field's default: its factory, or the (immutable) default itself."""
    if default_factory is not None:
        return default_factory
    if default is None or isinstance(default, str | int | float | bool | enum.Enum):
        return lambda: default
    return lambda: copy.deepcopy(default)


def _reader(annotation: Any) -> tuple[tuple[type, ...] | None, Convert | None]:
    """How to read a stored value of ``annotation``: the exact types it may have (checked
    without a call), and the conversion it needs (``None``: use it as it is)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:  # e.g. UtcDatetime: the base type says what to convert
        return _reader(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _reader(options[0]) if len(options) == 1 else (None, _refuse)
    if origin is list:
        (item,) = typing.get_args(annotation)
        kinds, convert = _reader(item)
        if convert is None and kinds is not None:
            return (list,), lambda value: [_exactly(kinds, entry) for entry in value]
        if convert is None:
            return (list,), None
        return (list,), lambda value: [convert(_exactly(kinds, entry)) for entry in value]
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):  # an unknown value: KeyError, full validation
            return (str,), annotation._value2member_map_.__getitem__
        if issubclass(annotation, BaseModel):
            return (dict,), _nested(annotation)
        if issubclass(annotation, datetime):
            return (datetime,), _utc
        if issubclass(annotation, ObjectId):
            return (ObjectId,), None
        if annotation is float:
            return (float, int), float
        if annotation in (str, int, bytes, bool):
            return (annotation,), None
    return None, _refuse


def _exactly(kinds: tuple[type, ...] | None, value: Any) -> Any:
    if kinds is not None and type(value) not in kinds:
        raise _Unexpected
    return value


def _refuse(value: Any) -> Any:
    raise _Unexpected(value)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:  # what our own client returns (tzinfo=UTC)
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
