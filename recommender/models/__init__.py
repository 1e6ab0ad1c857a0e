"""Student registry: recommenders looked up by name (``get("sasrec")``), never by if/else.

A miss lists the valid choices (:class:`~kg_builder.errors.InvalidInputError` naming ``model``).
New students register with ``@register("name")`` on a
:class:`~recommender.models.base.SequentialRecommender` subclass.
"""

from __future__ import annotations

from collections.abc import Callable

from kg_builder.errors import InvalidInputError

_REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make a recommender available as ``name``."""
    def decorate(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise InvalidInputError("model", f"{name!r} is already registered to {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        return cls

    return decorate


def get(name: str) -> type:
    """The recommender class registered as ``name`` (case-insensitive)."""
    _load_builtin()
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise InvalidInputError("model", f"unknown recommender {name!r}; choose one of: {', '.join(names())}") from None


def names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    from . import gru4rec, sasrec  # noqa: F401  (registration side effect)


__all__ = ["get", "names", "register"]
