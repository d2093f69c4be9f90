"""Settings a lead edits on the desk (rows of the ``settings`` table), read without loading the services:
the workload weights of the priorities (lib.assignment writes them) and the repeat-issue window (lib.repeats
writes it). The assignment rules, the board, the metrics and the weekly report read them from here."""

from __future__ import annotations

from sqlalchemy.orm import Session

from lib.config import get_settings
from lib.errors import PermissionDenied
from lib.models import User, setting_row
from lib.workflow import Permission, Priority, Role, has_permission

WEIGHTS_KEY = "assignment_weights"
#: A critical ticket loads a technician 4 times as much as a low one, unless a lead changes it.
DEFAULT_WEIGHTS: dict[Priority, int] = {Priority.CRITICAL: 4, Priority.HIGH: 3, Priority.MEDIUM: 2, Priority.LOW: 1}
MAX_WEIGHT = 100

REPEAT_WINDOW_KEY = "repeat_window_days"
DEFAULT_WINDOW_DAYS = 30
MAX_WINDOW_DAYS = 365


def parse_weights(value: object) -> dict[Priority, int]:
    """Weights from a setting's JSON ({"critical": 4, ...}); missing or bad entries take the default."""
    weights = dict(DEFAULT_WEIGHTS)
    if not isinstance(value, dict):
        return weights
    for key, raw in value.items():
        try:
            p = Priority.parse(key)
        except ValueError:
            continue
        if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= MAX_WEIGHT:
            weights[p] = raw
    return weights


def get_weights(session: Session) -> dict[Priority, int]:
    row = setting_row(session, WEIGHTS_KEY)
    return parse_weights(row.value if row is not None else None)


def window_days(session: Session) -> int:
    """The repeat-issue window in days: the settings table (a lead edits it), else ``repeat_window_days`` in
    the configuration, else 30."""
    row = setting_row(session, REPEAT_WINDOW_KEY)
    value: object = None
    if row is not None:
        value = row.value.get("days") if isinstance(row.value, dict) else row.value
    if value is None:
        value = get_settings().repeat_window_days
    try:
        days = int(value) if value is not None else DEFAULT_WINDOW_DAYS  # type: ignore[call-overload]  # any JSON value: errors caught below
    except (TypeError, ValueError):
        return DEFAULT_WINDOW_DAYS
    return days if 1 <= days <= MAX_WINDOW_DAYS else DEFAULT_WINDOW_DAYS


def lead_actor(session: Session, actor_id: int, what: str) -> User:
    """The active account ``actor_id``, if it may change desk settings (Permission.ADMIN); PermissionDenied else."""
    user = session.get(User, actor_id)
    if user is None or not user.active:
        raise PermissionDenied(f"no active account {actor_id} to {what}")
    if not has_permission(Role(user.role), Permission.ADMIN):
        raise PermissionDenied(f"only a team lead may {what}")
    return user
