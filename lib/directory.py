"""Requesters (contacts), devices and categories: find, create, edit."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lib.errors import NotFound, ValidationError
from lib.models import AuditLog, Category, Device, Requester, User
from lib.ticket_core import clean_line, load_actor, require_permission
from lib.workflow import Permission, Role

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def clean_email(value: object, field: str = "email", *, required: bool = False) -> str | None:
    text = clean_line(value, field, required=required, max_len=254)
    if text is None:
        return None
    if not _EMAIL.match(text):
        raise ValidationError({field: f"{text!r} is not an e-mail address"})
    return text.lower()


@dataclass(frozen=True)
class RequesterInput:
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    department: str | None = None
    location: str | None = None


def find_requester_by_email(session: Session, email: str) -> Requester | None:
    return session.scalar(select(Requester).where(Requester.email == email.strip().lower()))


def find_or_create_requester(session: Session, data: RequesterInput) -> Requester:
    """A contact found again by e-mail; otherwise created. Missing details of a found contact are filled in."""
    email = clean_email(data.email, "requester_email")
    name = clean_line(data.name, "requester_name", required=False, max_len=120)
    phone = clean_line(data.phone, "requester_phone", required=False, max_len=40)
    department = clean_line(data.department, "requester_department", required=False, max_len=120)
    location = clean_line(data.location, "requester_location", required=False, max_len=120)
    if email:
        found = find_requester_by_email(session, email)
        if found is not None:
            for attr, value in (("phone", phone), ("department", department), ("location", location)):
                if value and not getattr(found, attr):
                    setattr(found, attr, value)
            return found
    if not name and not email:
        raise ValidationError({"requester_name": "a new contact needs a name or an e-mail address"})
    if not email and not phone:
        raise ValidationError({"requester_email": "give an e-mail address or a phone number so we can reach them"})
    requester = Requester(
        name=name or email.split("@")[0],  # type: ignore[union-attr]  # no name: an e-mail (checked above)
        email=email,
        phone=phone,
        department=department,
        location=location,
    )
    if not email:
        session.add(requester)
        session.flush()
        return requester
    # Two mails from a new contact may be taken in at once: the unique e-mail decides, the loser finds it.
    try:
        with session.begin_nested():
            session.add(requester)
            session.flush()
    except IntegrityError:
        found = find_requester_by_email(session, email)
        if found is None:
            raise
        return found
    return requester


def search_requesters(session: Session, text: str, *, limit: int = 20) -> list[Requester]:
    text = (text or "").strip().lower()
    stmt = select(Requester).order_by(Requester.name).limit(limit)
    if text:
        like = f"%{_escape_like(text)}%"
        stmt = stmt.where(
            or_(func.lower(Requester.name).like(like, escape="\\"), Requester.email.like(like, escape="\\"))
        )
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class DeviceInput:
    asset_tag: str | None = None
    device_type: str | None = None
    make_model: str | None = None
    os: str | None = None
    serial: str | None = None
    location: str | None = None


def find_or_create_device(session: Session, data: DeviceInput, *, owner_id: int | None = None) -> Device:
    tag = clean_line(data.asset_tag, "asset_tag", required=False, max_len=64)
    if tag:
        found = session.scalar(select(Device).where(func.upper(Device.asset_tag) == tag.upper()))
        if found is not None:
            return found
    fields = {
        "device_type": clean_line(data.device_type, "device_type", required=False, max_len=60),
        "make_model": clean_line(data.make_model, "make_model", required=False, max_len=120),
        "os": clean_line(data.os, "os", required=False, max_len=80),
        "serial": clean_line(data.serial, "serial", required=False, max_len=120),
        "location": clean_line(data.location, "device_location", required=False, max_len=120),
    }
    if not tag and not any(fields.values()):
        raise ValidationError({"asset_tag": "give an asset tag or some device details"})
    device = Device(asset_tag=tag, owner_id=owner_id, **fields)
    session.add(device)
    session.flush()
    return device


def search_devices(session: Session, text: str, *, limit: int = 20) -> list[Device]:
    text = (text or "").strip().lower()
    stmt = select(Device).order_by(Device.asset_tag).limit(limit)
    if text:
        like = f"%{_escape_like(text)}%"
        stmt = stmt.where(
            or_(
                func.lower(Device.asset_tag).like(like, escape="\\"),
                func.lower(Device.make_model).like(like, escape="\\"),
                func.lower(Device.serial).like(like, escape="\\"),
            )
        )
    return list(session.scalars(stmt))


# --- categories --------------------------------------------------------------------------------


def list_categories(session: Session, *, include_inactive: bool = False) -> list[Category]:
    stmt = select(Category).order_by(Category.name)
    if not include_inactive:
        stmt = stmt.where(Category.active.is_(True))
    return list(session.scalars(stmt))


def resolve_category(session: Session, value: object, *, field: str = "category") -> Category:
    """A category by id or by name (case-insensitive); inactive ones are refused for new work."""
    if value is None or value == "":
        raise ValidationError({field: "is required"})
    if isinstance(value, bool):
        raise ValidationError({field: "must be a category name or id"})
    if isinstance(value, int):
        cat = session.get(Category, value) if 0 < value < 2**31 else None
    elif isinstance(value, str):
        cat = session.scalar(select(Category).where(func.lower(Category.name) == value.strip().lower()))
    else:
        raise ValidationError({field: f"must be a category name or id, not {type(value).__name__}"})
    if cat is None:
        names = ", ".join(c.name for c in list_categories(session))
        raise ValidationError({field: f"unknown category {value!r}; choose one of: {names}"})
    if not cat.active:
        raise ValidationError({field: f"category {cat.name!r} is deactivated"})
    return cat


def save_category(
    session: Session, *, actor: int, name: str, category_id: int | None = None, active: bool = True,
    description: str | None = None,
) -> Category:
    """Create or edit a category (lead only). Categories are deactivated, never deleted."""
    user = load_actor(session, actor)
    require_permission(user, Permission.EDIT_CATEGORIES, "edit categories")
    clean = clean_line(name, "name", max_len=80)
    clash = session.scalar(select(Category).where(func.lower(Category.name) == clean.lower()))
    cat: Category | None
    if category_id is None:
        if clash is not None:
            raise ValidationError({"name": f"a category named {clash.name!r} exists"})
        cat = Category(name=clean, active=active, description=description)
        session.add(cat)
        action = "category_created"
    else:
        cat = session.get(Category, category_id)
        if cat is None:
            raise NotFound(f"category {category_id} does not exist")
        if clash is not None and clash.id != cat.id:
            raise ValidationError({"name": f"a category named {clash.name!r} exists"})
        cat.name, cat.active, cat.description = clean, active, description
        action = "category_changed"
    session.flush()
    session.add(AuditLog(actor=user.username if user else "system", action=action, target=f"category {cat.id}",
                         detail=f"name={cat.name} active={cat.active}"))
    return cat


def active_staff(session: Session, *, min_role: Role = Role.TECHNICIAN) -> list[User]:
    return list(
        session.scalars(
            select(User).where(User.active.is_(True), User.role >= int(min_role)).order_by(User.name)
        ).unique()
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
