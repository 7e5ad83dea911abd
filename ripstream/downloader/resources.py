"""One context-manager protocol for everything that holds connections, files or databases."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

__all__ = ["Closing"]


class Closing(ABC):
    """A resource used as ``with thing: ...``; leaving the block calls :meth:`close`."""

    @abstractmethod
    def close(self) -> None:
        """Release what this object holds; safe to call more than once."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
