"""Saved queue views: a name and the queue's URL parameters (lib.queue_state), kept in the ``settings`` table.

* Personal views: row ``views:user:<id>``; only their owner sees, renames or deletes them.
* Shared views: row ``views:shared``; every technician sees them, only a team lead (checked against the
  users table at each call) saves, renames or deletes them.

A row's value is a list of ``{"name": ..., "params": {"view": ["unassigned"], ...}}``. The parameters go
through :func:`lib.queue_state.from_params` when applied, so a view saved before a category was removed
opens with a note instead of an error. Callers open the transaction (services never commit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from lib import clock
from lib.errors import PermissionDenied, ValidationError
from lib.models import Setting, User
from lib.queue_state import PARAMS, query_string
from lib.search import SearchTextError, clean_search_text
from lib.workflow import Role

SHARED_KEY = "views:shared"
MAX_NAME = 60
MAX_VIEWS = 50


def personal_key(user_id: int) -> str:
    return f"views:user:{int(user_id)}"


@dataclass(frozen=True)
class SavedView:
    name: str
    params: dict[str, list[str]]
    shared: bool

    @property
    def link(self) -> str:
        return "/" + query_string(self.params)  # the queue is the app's default page


def _clean_params(params: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {k: [str(v) for v in params[k]][:50] for k in PARAMS if k in params and params[k]}


def _load(session: Session, key: str, *, shared: bool) -> list[SavedView]:
    row = session.get(Setting, key)
    items = row.value if row is not None and isinstance(row.value, list) else []
    out = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("params"), dict):
            params = {k: [str(x) for x in v] for k, v in item["params"].items() if isinstance(v, list)}
            out.append(SavedView(name=item["name"], params=_clean_params(params), shared=shared))
    return out


def _store(session: Session, key: str, views: list[SavedView], now: datetime) -> None:
    value = [{"name": v.name, "params": v.params} for v in views]
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value, updated_at=now))
    else:
        row.value = value
        row.updated_at = now


def list_views(session: Session, *, user_id: int) -> list[SavedView]:
    """The shared views, then the user's own, each in the order saved."""
    return _load(session, SHARED_KEY, shared=True) + _load(session, personal_key(user_id), shared=False)


def _actor(session: Session, actor: int, *, shared: bool) -> User:
    user = session.get(User, actor)
    if user is None or not user.active:
        raise PermissionDenied("Your account is not active.")
    if shared and Role(user.role) < Role.LEAD:
        raise PermissionDenied("Only a team lead can change shared views.")
    return user


def _name(name: str) -> str:
    try:
        cleaned = " ".join(clean_search_text(name).split())
    except SearchTextError:
        raise ValidationError("A view's name cannot hold control characters.") from None
    if not cleaned:
        raise ValidationError("Give the view a name.")
    if len(cleaned) > MAX_NAME:
        raise ValidationError(f"A view's name has at most {MAX_NAME} characters.")
    return cleaned


def save_view(session: Session, *, actor: int, name: str, params: Mapping[str, Sequence[str]], shared: bool = False,
              now: datetime | None = None) -> SavedView:
    """Save (or overwrite, by the same name) a view of the actor's, or a shared one (team lead only)."""
    _actor(session, actor, shared=shared)
    key = SHARED_KEY if shared else personal_key(actor)
    name = _name(name)
    views = _load(session, key, shared=shared)
    view = SavedView(name=name, params=_clean_params(params), shared=shared)
    kept = [v for v in views if v.name.casefold() != name.casefold()]
    if len(kept) >= MAX_VIEWS:
        raise ValidationError(f"At most {MAX_VIEWS} views here: delete one first.")
    position = next((i for i, v in enumerate(views) if v.name.casefold() == name.casefold()), len(kept))
    kept.insert(position, view)
    _store(session, key, kept, now or clock.now())
    return view


def rename_view(session: Session, *, actor: int, name: str, new_name: str, shared: bool = False,
                now: datetime | None = None) -> SavedView:
    _actor(session, actor, shared=shared)
    key = SHARED_KEY if shared else personal_key(actor)
    new_name = _name(new_name)
    views = _load(session, key, shared=shared)
    found = next((i for i, v in enumerate(views) if v.name == name), None)
    if found is None:
        raise ValidationError(f"No view named {name!r} (it may have been deleted meanwhile).")
    if any(v.name.casefold() == new_name.casefold() for i, v in enumerate(views) if i != found):
        raise ValidationError(f"There is already a view named {new_name!r}.")
    views[found] = SavedView(name=new_name, params=views[found].params, shared=shared)
    _store(session, key, views, now or clock.now())
    return views[found]


def delete_view(session: Session, *, actor: int, name: str, shared: bool = False, now: datetime | None = None) -> None:
    _actor(session, actor, shared=shared)
    key = SHARED_KEY if shared else personal_key(actor)
    views = _load(session, key, shared=shared)
    kept = [v for v in views if v.name != name]
    if len(kept) == len(views):
        raise ValidationError(f"No view named {name!r} (it may have been deleted meanwhile).")
    _store(session, key, kept, now or clock.now())
