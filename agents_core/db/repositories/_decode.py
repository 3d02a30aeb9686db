"""Models from documents the server returns, without paying for a full validation each time.

Design note: a Beanie document costs ~43 µs to build through ``model_validate`` (its
``__init__`` and private-state set-up run per instance), more than the driver needs to fetch
it. What the layer reads back is what it wrote, so ``decode`` builds the model directly from a
per-class plan: each field's key (``_id`` for ``id``), its default, and the one conversion it
needs (a string enum, a UTC datetime, a nested model). Anything the plan does not expect (a
document written by someone else, a wrong type) falls back to ``model_validate``, which
validates it in full and raises as usual.
"""

from __future__ import annotations

import copy
import enum
import types
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

from bson import ObjectId
from pydantic import BaseModel
from pydantic.fields import FieldInfo

__all__ = ["decode"]

M = TypeVar("M", bound=BaseModel)

Convert = Callable[[Any], Any]
_MISSING = object()


class _Unexpected(Exception):
    """The document is not what the plan expects: validate it in full instead."""


def decode(model: type[M], raw: Mapping[str, Any]) -> M:
    """A ``model`` instance of ``raw`` (a document as the driver returned it)."""
    fields, private = _plan(model)
    try:
        values = {}
        for name, key, default, convert in fields:
            value = raw.get(key, _MISSING)
            if value is _MISSING:
                values[name] = default()
            elif value is None or convert is None:
                values[name] = value
            else:
                values[name] = convert(value)
        if not raw.keys() <= _keys(model):
            raise _Unexpected
    except (_Unexpected, ValueError, TypeError, KeyError, AttributeError):
        return model.model_validate(raw)
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(instance, "__pydantic_fields_set__", set(values))
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", {k: f() for k, f in private.items()})
    return instance


@cache
def _keys(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(key for _, key, _, _ in _plan(model)[0])


@cache
def _plan(
    model: type[BaseModel],
) -> tuple[list[tuple[str, str, Callable[[], Any], Convert | None]], dict[str, Callable[[], Any]]]:
    fields = [
        (name, info.alias or name, _default(info), _converter(info.annotation))
        for name, info in model.model_fields.items()
    ]
    private = {
        name: _factory(attr.default, typing.cast(Callable[[], Any] | None, attr.default_factory))
        for name, attr in model.__private_attributes__.items()
    }
    return fields, private


def _default(info: FieldInfo) -> Callable[[], Any]:
    if info.is_required():

        def missing() -> Any:
            raise _Unexpected

        return missing
    # Factories that take the validated data are not used by these models.
    return _factory(info.default, typing.cast(Callable[[], Any] | None, info.default_factory))


def _factory(default: Any, default_factory: Callable[[], Any] | None) -> Callable[[], Any]:
    """A fast maker of a field's default: its factory, or the (immutable) default itself."""
    if default_factory is not None:
        return default_factory
    if default is None or isinstance(default, str | int | float | bool | enum.Enum):
        return lambda: default
    return lambda: copy.deepcopy(default)


def _converter(annotation: Any) -> Convert | None:
    """The conversion a stored value of ``annotation`` needs (``None``: use it as it is)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:  # e.g. UtcDatetime: the base type says what to convert
        return _converter(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _converter(options[0]) if len(options) == 1 else _strict(annotation)
    if origin is list:
        (item,) = typing.get_args(annotation)
        convert = _converter(item)
        if convert is None:
            return _checked(list)
        return lambda value: [convert(entry) for entry in _checked(list)(value)]
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return annotation
        if issubclass(annotation, BaseModel):
            return lambda value: decode(annotation, value)
        if issubclass(annotation, datetime):
            return _utc
        if issubclass(annotation, ObjectId):
            return _checked(ObjectId)
        if annotation in (str, int, float, bytes, bool):
            return _exact(annotation)
    return _strict(annotation)


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise _Unexpected
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _exact(kind: type) -> Convert:
    accepted: tuple[type, ...] = (int, float) if kind is float else (kind,)

    def check(value: Any) -> Any:
        if type(value) not in accepted:  # bool is not an int here, nor int a str
            raise _Unexpected
        return float(value) if kind is float else value

    return check


def _checked(kind: type) -> Convert:
    def check(value: Any) -> Any:
        if not isinstance(value, kind):
            raise _Unexpected
        return value

    return check


def _strict(annotation: Any) -> Convert:
    def refuse(_: Any) -> Any:
        raise _Unexpected(annotation)

    return refuse
