"""Errors raised by the cascade."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, cast

from langchain_cascade.types import AttemptInfo

__all__ = ["CascadeError", "GateTimeoutError", "TierTimeoutError"]


class _Reports(Protocol):
    def to_dict(self) -> AttemptInfo: ...


class CascadeError(RuntimeError):
    """Raised when the final tier fails: no tier could answer.

    Attributes:
        attempts: Every attempt of the call (the same form as
            ``response_metadata["cascade"]["attempts"]``), each with its ``error``.
    """

    def __init__(
        self, attempts: Sequence[AttemptInfo | _Reports], *, note: str = ""
    ) -> None:
        """Build the error from the call's attempts.

        Args:
            attempts: Every attempt of the call, the failing one last, as
                :class:`~langchain_cascade.types.AttemptInfo` dicts (or objects
                with a ``to_dict()`` giving one).
            note: Why the call stopped, when it was not the final tier failing
                (e.g. the budget).
        """
        self.attempts: list[AttemptInfo] = [
            cast("AttemptInfo", dict(a)) if isinstance(a, Mapping) else a.to_dict()
            for a in attempts
        ]
        lines = [
            f"  tier {a['tier']} ({a['model']}): {a['error'] or a['reason']}"
            for a in self.attempts
        ]
        head = note or f"the final tier failed after {len(self.attempts)} attempts"
        super().__init__(f"no tier answered: {head}:\n" + "\n".join(lines))

    def __reduce__(self) -> tuple[Any, ...]:
        """Keep the attempts when the error is pickled (e.g. across processes)."""
        return (_rebuild, (str(self), self.attempts))


def _rebuild(message: str, attempts: list[AttemptInfo]) -> CascadeError:
    err = CascadeError.__new__(CascadeError)
    RuntimeError.__init__(err, message)
    err.attempts = attempts
    return err


class _SecondsTimeoutError(TimeoutError):
    """A timeout that says how long it was and keeps it when pickled."""

    _what: ClassVar[str] = "timeout"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"{self._what} after {seconds:g}s")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.seconds,))


class TierTimeoutError(_SecondsTimeoutError):
    """A tier took longer than its ``timeout``; the cascade cancelled it.

    Attributes:
        seconds: The timeout it passed.
    """


class GateTimeoutError(_SecondsTimeoutError):
    """A gate took longer than its tier's ``timeout``; the gate failed closed.

    Attributes:
        seconds: The timeout it passed.
    """

    _what = "gate timeout"
