"""Domain errors raised by the service layer; pages turn them into messages, the CLI into exit codes."""

from __future__ import annotations


class HelpdeskError(Exception):
    """Base class: ``str(error)`` is a message fit to show a user."""


class ValidationError(HelpdeskError):
    """Input is wrong. ``fields`` maps a field name to what is wrong with it."""

    def __init__(self, message: str | dict[str, str], *, fields: dict[str, str] | None = None) -> None:
        if isinstance(message, dict):
            fields = message
            message = "; ".join(f"{k}: {v}" for k, v in message.items())
        super().__init__(message)
        self.fields: dict[str, str] = dict(fields or {})


class NotFound(HelpdeskError):
    pass


class PermissionDenied(HelpdeskError):
    pass


class TransitionNotAllowed(HelpdeskError):
    pass


class GuardFailed(TransitionNotAllowed):
    """A guard blocked the action; ``missing`` lists exactly what is needed."""

    def __init__(self, action: str, missing: list[str]) -> None:
        super().__init__(f"cannot {action} yet; missing: " + "; ".join(missing))
        self.missing = list(missing)


class StaleTicket(HelpdeskError):
    """The ticket changed since the caller loaded it. ``changes`` says who changed what, and when."""

    def __init__(self, ticket_ref: str, *, expected: int, current: int, changes: list[str]) -> None:
        detail = "; ".join(changes) if changes else "another change"
        super().__init__(
            f"{ticket_ref} was changed after you loaded it (your version {expected}, now {current}): {detail}. "
            "Your input is kept; reload to see the new state, then save again."
        )
        self.expected = expected
        self.current = current
        self.changes = changes
