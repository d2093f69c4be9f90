"""The desk's audit log: logins, lockouts and account and settings changes (ticket changes are ticket events)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from lib import clock
from lib.models import AuditLog


def audit(session: Session, *, actor: str | None, action: str, target: str | None = None,
          detail: str | None = None, now: datetime | None = None) -> None:
    session.add(AuditLog(at=clock.utc(now), actor=actor, action=action, target=target, detail=detail))


def list_audit(session: Session, *, limit: int = 200) -> list[AuditLog]:
    return list(session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)))
