"""The demo desk's people and things: staff with skills, contacts, devices; and what each ticket says."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from itertools import accumulate
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from lib.audit_log import audit
from lib.models import Category, Device, Requester, User, UserSkill
from lib.seed.data import (
    ALERT_SUMMARIES,
    APPS,
    DEMO_STAFF,
    DEPARTMENTS,
    DESCRIPTIONS,
    DEVICE_MODELS,
    FIRST_NAMES,
    FLOORS,
    LAST_NAMES,
    SITES,
    SUMMARIES,
)
from lib.seed.life import Person
from lib.users import hash_password
from lib.workflow import Role

SHARED_TYPES = ("Printer", "Network", "Server")


@dataclass
class People:
    lead: Person
    seniors: list[Person]
    staff: list[tuple[Person, Role, int, dict[int, int]]]  # person, role, capacity, {category id: level}
    created: list[str]
    requester_rows: list[tuple[int, str, str | None]]
    own_device: dict[int, tuple[int, str]]  # requester id -> (device id, make/model)
    shared: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # type -> [(device id, make/model)]
    requester_cum: list[float] = field(default_factory=list)
    rng: random.Random | None = None

    @property
    def requesters(self) -> int:
        return len(self.requester_rows)

    @property
    def devices(self) -> int:
        return len(self.own_device) + sum(len(v) for v in self.shared.values())

    def pick_requester(self) -> tuple[int, str, str | None]:
        """Some people call far more often than others."""
        return self.rng.choices(self.requester_rows, cum_weights=self.requester_cum)[0]  # type: ignore[union-attr]  # rng is set before any pick


def make_people(session: Session, rng: random.Random, *, tickets: int, password: str, now: datetime) -> People:
    """Reuse demo staff, contacts and devices already in the database; create what is missing."""
    staff, created = _staff(session, rng, password, now)
    lead = next((p for p, role, _, _ in staff if role == Role.LEAD), staff[0][0])
    seniors = [p for p, role, _, _ in staff if role == Role.SENIOR]
    want = max(20, min(4000, tickets // 40 + 50))
    rows = cast(list[tuple[int, str, str | None]], [tuple(r) for r in session.execute(
        select(Requester.id, Requester.name, Requester.email).order_by(Requester.id).limit(want))])
    if len(rows) < want:
        rows += _new_requesters(session, rng, want - len(rows), now)
    own: dict[int, tuple[int, str]] = {}
    shared: dict[str, list[tuple[int, str]]] = {t: [] for t in SHARED_TYPES}
    for dev_id, owner, dtype, model in session.execute(
            select(Device.id, Device.owner_id, Device.device_type, Device.make_model).order_by(Device.id)):
        if owner is not None:
            own.setdefault(owner, (dev_id, model or ""))
        elif dtype in shared:
            shared[dtype].append((dev_id, model or ""))
    _new_devices(session, rng, rows, own, shared, now)
    weights = [1.0 / (i + 10) ** 0.8 for i in range(len(rows))]
    rng.shuffle(weights)
    return People(lead=lead, seniors=seniors, staff=staff, created=created, requester_rows=rows, own_device=own,
                  shared=shared, requester_cum=list(accumulate(weights)), rng=rng)


def _staff(session: Session, rng: random.Random, password: str, now: datetime):
    categories = list(session.scalars(select(Category.id).where(Category.active.is_(True)).order_by(Category.id)))
    names = [u for u, *_ in DEMO_STAFF]
    existing = {u.username: u for u in session.scalars(select(User).where(User.username.in_(names))).unique()}
    hashed = hash_password(password) if len(existing) < len(names) else None  # once for every new account
    created = []
    out = []
    for username, name, role_key, capacity in DEMO_STAFF:
        user = existing.get(username)
        role = Role.parse(role_key)
        if user is None:
            user = User(username=username, name=name, email=f"{username}@helpdesk.example", password_hash=hashed,
                        role=int(role), capacity=capacity, active=True, created_at=now)
            strong = set(rng.sample(categories, k=min(2, len(categories))))
            for cat in categories:
                if role is Role.TECHNICIAN:
                    level = 3 if cat in strong else rng.choice((1, 1, 2))
                else:
                    level = 3 if role is Role.SENIOR and rng.random() < 0.7 else 2
                user.skills.append(UserSkill(category_id=cat, level=level))
            session.add(user)
            session.flush()
            audit(session, actor="seed-demo", action="user_created", target=username, detail=f"role={role.key}", now=now)
            created.append(username)
        skills = {sk.category_id: sk.level for sk in user.skills}
        out.append((Person(user.id, user.name), Role(user.role), user.capacity, skills))
    return out, created


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().replace("'", "")


def _new_requesters(session: Session, rng: random.Random, n: int, now: datetime) -> list[tuple[int, str, str | None]]:
    taken = set(session.scalars(select(Requester.email).where(Requester.email.is_not(None))))
    made = []
    for _ in range(n):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = None
        if rng.random() > 0.05:  # a few are known by phone only
            base, k = f"{_ascii(first)}.{_ascii(last)}", 1
            email = f"{base}@example.org"
            while email in taken:
                k += 1
                email = f"{base}{k}@example.org"
            taken.add(email)
        made.append(Requester(name=f"{first} {last}", email=email, phone=f"+44 20 7946 {rng.randrange(10000):04d}",
                              department=rng.choice(DEPARTMENTS),
                              location=f"{rng.choice(SITES)}, {rng.choice(FLOORS)}", created_at=now))
    session.add_all(made)
    session.flush()
    return [(r.id, r.name, r.email) for r in made]


def _new_devices(session: Session, rng: random.Random, requesters, own, shared, now: datetime) -> None:
    taken = set(session.scalars(select(Device.asset_tag).where(Device.asset_tag.is_not(None))))
    counter = [len(taken)]

    def tag() -> str:
        while True:
            counter[0] += 1
            value = f"AST-{counter[0]:06d}"
            if value not in taken:
                taken.add(value)
                return value

    def device(dtype: str, owner: int | None) -> Device:
        model, os_name = rng.choice(DEVICE_MODELS[dtype])
        return Device(asset_tag=tag(), device_type=dtype, make_model=model, os=os_name,
                      serial=f"{model.split()[0][:2].upper()}{rng.randrange(16 ** 8):08X}",
                      location=f"{rng.choice(SITES)}, {rng.choice(FLOORS)}", owner_id=owner, created_at=now)

    new_own = [(rid, device("Laptop" if rng.random() < 0.65 else "Desktop", rid))
               for rid, _, _ in requesters if rid not in own]
    n = len(requesters)
    new_shared = [(dtype, device(dtype, None)) for dtype, want in
                  (("Printer", n // 25 + 3), ("Network", n // 60 + 3), ("Server", n // 150 + 2))
                  for _ in range(max(0, want - len(shared[dtype])))]
    session.add_all([d for _, d in new_own] + [d for _, d in new_shared])
    session.flush()
    for rid, d in new_own:
        own[rid] = (d.id, d.make_model or "")
    for dtype, d in new_shared:
        shared[dtype].append((d.id, d.make_model or ""))


def pick_staff(rng: random.Random, people: People, category_ids: list[int]):
    """A chooser of the assignee for a category: by skill level and capacity; seniors less, the lead rarely."""
    table: dict[int, tuple[list[Person], list[float]]] = {}
    for cat in category_ids:
        persons, weights = [], []
        for person, role, capacity, skills in people.staff:
            level = skills.get(cat, 1)
            factor = {Role.TECHNICIAN: 1.0, Role.SENIOR: 0.35, Role.LEAD: 0.03}[role]
            persons.append(person)
            weights.append(level * level * factor * max(capacity, 1) / 15)
        table[cat] = (persons, list(accumulate(weights)))

    def pick(category_id: int) -> Person:
        persons, cum = table.get(category_id) or next(iter(table.values()))
        return rng.choices(persons, cum_weights=cum)[0]

    return pick


class SpecText:
    """Summary, description and device of a ticket, from its category and requester."""

    def __init__(self, rng: random.Random, people: People) -> None:
        self.rng, self.people = rng, people

    def make(self, category: str, alert: bool, requester: tuple[int, str, str | None] | None):
        rng, people = self.rng, self.people
        device: tuple[int, str] | None = None
        if alert:
            pool = people.shared["Server" if category == "Software" or rng.random() < 0.3 else "Network"]
            device = rng.choice(pool) if pool else None
            templates = ALERT_SUMMARIES.get(category) or ALERT_SUMMARIES["Networking"]
        else:
            if category == "Printing":
                pool = people.shared["Printer"]
                device = rng.choice(pool) if pool and rng.random() < 0.85 else None
            elif requester is not None and category in ("Hardware", "Software", "Networking") and rng.random() < 0.75:
                device = people.own_device.get(requester[0])
            templates = SUMMARIES.get(category) or SUMMARIES["Other"]
        model = device[1] if device else rng.choice(DEVICE_MODELS["Printer" if category == "Printing" else "Laptop"])[0]
        summary = rng.choice(templates).format(model=model, app=rng.choice(APPS), site=rng.choice(SITES))
        return summary[:200], rng.choice(DESCRIPTIONS), device[0] if device else None
