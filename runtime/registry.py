"""Named registries (tasks, builtin datasets, backbones, architectures, exporters, parity metrics),
with duplicate checks and lookup errors that list the known names."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from sensorium.runtime.errors import UsageError

T = TypeVar("T")


class RegistryError(UsageError):
    """Unknown or duplicate registry name (a usage error: exit code 2)."""


class Registry(Generic[T]):
    """A name -> object mapping. `kind` names the things held ("architecture", "task") in errors;
    `error` is the exception type raised for unknown and duplicate names (default RegistryError)."""

    def __init__(self, kind: str, error: type[Exception] = RegistryError) -> None:
        self.kind = kind
        self.error = error
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register `obj` under `name`; without `obj`, return a decorator."""

        def add(item: T) -> T:
            if name in self._items:
                raise self.error(f"{self.kind} '{name}' is already registered")
            self._items[name] = item
            return item

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        """Look up `name`, failing with the list of known names."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise self.error(f"unknown {self.kind} '{name}'; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._items[name]) for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
