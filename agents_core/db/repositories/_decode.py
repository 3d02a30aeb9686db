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
    if issubclass(model, Document):
        return cast(M, _document(model, raw))
    return model.model_validate(raw)  # plain models: pydantic-core is the fast path


def _document(model: type[Document], raw: Mapping[str, Any]) -> Document:
    plan = _plan(model)
    try:
        values = {}
        for name, key, default, convert in plan.fields:
            value = raw.get(key, _MISSING)
            if value is _MISSING:
                values[name] = default()
            elif value is None or convert is None:
                values[name] = value
            else:
                values[name] = convert(value)
        if not raw.keys() <= plan.keys:
            raise _Unexpected
    except (_Unexpected, ValueError, TypeError, KeyError, AttributeError):
        validated: Document = model.model_validate(raw)
        return validated
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(instance, "__pydantic_fields_set__", set(values))
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", {k: f() for k, f in plan.private})
    return instance


def new_document(model: type[Document], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The stored form of a new ``model`` with ``fields`` (checked by the caller) and defaults.

    Its ``_id`` is made here, on the client, so that a retried insert cannot store a copy.
    """
    stored: dict[str, Any] = {}
    for name, key, default, _ in _plan(model).fields:
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
    if issubclass(model, Document):
        return lambda value: _document(model, value)
    return model.model_validate


@dataclass(frozen=True, slots=True)
class _Plan:
    #: (attribute, stored key, default maker, conversion) for each field.
    fields: tuple[tuple[str, str, Callable[[], Any], Convert | None], ...]
    #: Every key a stored document of this class may have.
    keys: frozenset[str]
    #: (name, default maker) of each private attribute.
    private: tuple[tuple[str, Callable[[], Any]], ...]


_PLANS: dict[type[Document], _Plan] = {}


def _plan(model: type[Document]) -> _Plan:
    plan = _PLANS.get(model)
    if plan is None:
        fields = tuple(
            (name, info.alias or name, _default(info), _converter(info.annotation))
            for name, info in model.model_fields.items()
        )
        private = tuple(
            (name, _factory(attr.default, cast(Callable[[], Any] | None, attr.default_factory)))
            for name, attr in model.__private_attributes__.items()
        )
        plan = _PLANS[model] = _Plan(fields, frozenset(key for _, key, _, _ in fields), private)
    return plan


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
        if issubclass(annotation, enum.Enum):  # an unknown value: KeyError, full validation
            return annotation._value2member_map_.__getitem__
        if issubclass(annotation, BaseModel):
            return _nested(annotation)
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
