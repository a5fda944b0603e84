"""Named registries (tasks, datasets, exporters, ...) with duplicate checks and helpful lookup errors."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from sensorium.pipelines.common.errors import UsageError

T = TypeVar("T")


class RegistryError(UsageError):
    """Unknown or duplicate registry name."""


class Registry(Generic[T]):
    """A name -> object mapping. `kind` names the things held ("task", "dataset") in error messages."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register `obj` under `name`; without `obj`, return a decorator."""

        def add(item: T) -> T:
            if name in self._items:
                raise RegistryError(f"{self.kind} '{name}' is already registered")
            self._items[name] = item
            return item

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        """Look up `name`, failing with the list of known names."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise RegistryError(f"unknown {self.kind} '{name}'; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
