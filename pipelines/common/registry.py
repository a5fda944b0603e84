"""Registries for tasks, datasets, exporters, ...: the models' Registry with user-facing errors."""
from __future__ import annotations

from typing import TypeVar

from sensorium.models.registry import Registry as _Registry
from sensorium.pipelines.common.errors import UsageError

T = TypeVar("T")


class RegistryError(UsageError):
    """Unknown or duplicate registry name."""


class Registry(_Registry[T]):
    """A registry whose lookup errors are one-line usage errors (exit code 2)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind, RegistryError)
