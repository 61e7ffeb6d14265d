"""The one interface every target implements (after Polygraphy's runners).

A target is a context manager: ``activate()`` brings its runtime up (a browser, a worker
process, a serving container), ``deactivate()`` tears it down, whatever happened in between.
Public methods enforce the lifecycle and call the small ``*_impl`` methods a target overrides.
Heavy libraries are imported inside the implementations only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import ClassVar

from harness.errors import HarnessError


class Target(ABC):
    """Base class of the four deployment targets."""

    name: ClassVar[str]
    platform: ClassVar[str]

    def __init__(self) -> None:
        self.is_active = False

    # lifecycle ---------------------------------------------------------------------------
    def activate(self) -> "Target":
        if self.is_active:
            return self
        reason = self.unavailable_reason()
        if reason:
            raise HarnessError(f"target {self.name} is not available: {reason}")
        self.activate_impl()
        self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            try:
                self.deactivate_impl()
            finally:
                self.is_active = False

    def __enter__(self) -> "Target":
        return self.activate()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.deactivate()

    def require_active(self) -> None:
        if not self.is_active:
            raise HarnessError(f"target {self.name} used before activate()",
                               hint="use it as a context manager: `with Target() as t: ...`")

    # what each target provides -----------------------------------------------------------
    @classmethod
    @abstractmethod
    def unavailable_reason(cls) -> str | None:
        """A cheap check: None when the runtime can run here, else the exact reason."""

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of every runtime component involved, for the evidence."""

    def activate_impl(self) -> None:
        """Bring the runtime up (default: nothing to do)."""

    def deactivate_impl(self) -> None:
        """Tear the runtime down (default: nothing to do)."""
