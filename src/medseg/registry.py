"""A name → object registry shared by models, methods and readers.

Registry names are the config and CLI names: one spelling, no aliases.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

__all__ = ["Registry", "check_spec", "complete_spec"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict-like registry filled by the `register(name)` decorator.

    Args:
        kind: what the registry holds ("model", "method", ...), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorate

    def register_named(self, name: str) -> Callable[[T], T]:
        """`register(name)` for a class that carries its registry name: also sets `cls.name = name`."""

        def decorate(cls: T) -> T:
            cls.name = name
            return self.register(name)(cls)

        return decorate

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; available: {sorted(self._items)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())


def check_spec(registry: Registry, spec: dict[str, Any], section: str, skip: tuple[str, ...] = ()) -> None:
    """Check a `{"name": ..., **options}` config section against the registered constructor's parameters.

    Args:
        registry: where `spec["name"]` is looked up.
        spec: the config section.
        section: its name in the config ("model", "method"), for messages.
        skip: constructor parameters that the config does not set (filled in by the engine).

    Raises:
        ValueError: no or unknown name, an option the constructor does not take (with the nearest one), or a value
            of another type than the constructor's annotation (strictly: `true` is not an integer).
    """
    if "name" not in spec:
        raise ValueError(f"{section} needs a 'name'; available: {registry.names()}")
    constructor = registry[spec["name"]]
    params = inspect.signature(constructor).parameters
    valid = [k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and k not in skip]
    for key in spec:
        if key != "name" and key not in valid:
            hint = difflib.get_close_matches(key, valid, n=1)
            suggestion = f"did you mean '{hint[0]}'?" if hint else f"valid options: {valid}"
            raise ValueError(f"{section}.{key}: unknown option for {registry.kind} {spec['name']!r}; {suggestion}")
    hints = _annotations(constructor)
    for key, value in spec.items():
        if key in hints:
            try:
                TypeAdapter(hints[key]).validate_python(value, strict=True)
            except ValidationError as error:
                problem = error.errors()[0]
                where = "".join(f"[{p}]" for p in problem["loc"])
                raise ValueError(f"{section}.{key}{where}: {problem['msg']} (got {value!r})") from None


def _annotations(constructor: Any) -> dict[str, Any]:
    """The constructor's parameter annotations (a class's from its `__init__`), as types."""
    target = constructor.__init__ if inspect.isclass(constructor) else constructor
    try:
        return typing.get_type_hints(target)
    except (NameError, TypeError):  # an annotation that does not evaluate: its values are not checked
        return {}


def _plain(value: Any) -> Any:
    """A default as the config records it: tuples become lists (YAML and JSON have no tuples)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def complete_spec(registry: Registry, spec: dict[str, Any], section: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """`spec` checked, with every constructor argument it leaves out set to the constructor's default, in the
    constructor's order: the section as it was built, so a run folder's config rebuilds it without code defaults.

    Raises:
        ValueError: as `check_spec`, or a required argument that `spec` does not give.
    """
    check_spec(registry, spec, section, skip)
    params = inspect.signature(registry[spec["name"]]).parameters
    complete: dict[str, Any] = {"name": spec["name"]}
    for key, param in params.items():
        if key in skip or param.kind not in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
            continue
        if key in spec:
            complete[key] = _plain(spec[key])
        elif param.default is inspect.Parameter.empty:
            raise ValueError(f"{section}.{key}: required for {registry.kind} {spec['name']!r}")
        else:
            complete[key] = _plain(param.default)
    return complete
