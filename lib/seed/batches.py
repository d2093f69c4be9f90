"""Generating the demo tickets in batches (pure: no database), for :mod:`lib.seed.demo`.

``batches(plan)`` yields, batch after batch, the ticket rows and event rows ready to insert. Each batch
draws from its own random stream (``seed``/batch number), so the output depends only on the seed, ``now``
and the database's starting ids, however the batches are produced.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from lib import sla
from lib.bizcal import BusinessCalendar
from lib.seed.business_seconds import FastClock, Seconds, running_intervals
from lib.seed.life import CLOSED, OPEN, Spec, TicketLife, World
from lib.seed.people import People, SpecText, pick_staff
from lib.seed.rows import TimeText, event_rows, ticket_row
from lib.seed.stories import live
from lib.workflow import Channel, EventKind

YEAR = 365.25 * 86400
_DOW = (1.15, 1.05, 1.0, 1.0, 0.85, 0.12, 0.08)  # Monday .. Sunday
_HOURS = (0.05, 0.04, 0.03, 0.03, 0.03, 0.05, 0.15, 0.45, 1.2, 1.8, 1.7, 1.5, 0.9, 1.3, 1.5, 1.3, 1.0, 0.5, 0.25,
          0.15, 0.12, 0.1, 0.08, 0.06)
_CHANNELS = (Channel.EMAIL.value, Channel.PHONE.value, Channel.WALK_IN.value, Channel.ON_BEHALF.value)
_CHANNEL_CUM = (45, 70, 80, 88)
_USER_CATEGORIES = {"Networking": 14, "Hardware": 18, "Software": 26, "Printing": 12, "Account Issues": 22, "Other": 8}
_ALERT_CATEGORIES = {"Networking": 50, "Hardware": 30, "Software": 20}
_USER_PRIORITIES = (32.0, 78.4, 96.4, 100.0)  # cumulative, Low .. Critical; with the alerts: about 30/45/20/5
_ALERT_PRIORITIES = (15, 50, 85, 100)
_STALLS = ("new", "assigned", "in_progress", "waiting_user", "waiting_vendor")
ALERT_SHARE = 0.12
OPEN_TARGET = 0.05


@dataclass
class Plan:
    """Everything a batch needs; built once by :func:`lib.seed.demo.seed_demo` (and inherited by a worker process)."""

    seed: int
    end: int
    arrivals: list[int]
    batch_size: int
    first_tid: int
    first_eid: int
    people: People
    categories: dict[str, int]
    policies: dict[int, dict]
    clocks: dict[int, FastClock | None]
    desk: FastClock
    confirmation_wait: int
    reopen_window: int
    postgres: bool


Batch = tuple[list[tuple], list[tuple], int, int, int]  # tickets, events, last ticket id, last event id, open


def batches(plan: Plan) -> Iterator[Batch]:
    stall_p = _stall_curve(plan.arrivals, plan.end)
    fmt = TimeText(plan.postgres)
    policy_json = {p: json.dumps(pol) if pol else None for p, pol in plan.policies.items()}
    tid, eid = plan.first_tid, plan.first_eid
    for k, lo in enumerate(range(0, len(plan.arrivals), plan.batch_size)):
        rng = random.Random(f"{plan.seed}/tickets/{k}")
        plan.people.rng = rng
        world = World(rng=rng, now=plan.end, lead=plan.people.lead, seniors=plan.people.seniors,
                      pick_tech=pick_staff(rng, plan.people, list(plan.categories.values())), desk=plan.desk,
                      confirmation_wait=plan.confirmation_wait, reopen_window=plan.reopen_window)
        picker = _SpecMaker(rng, plan.categories, plan.policies, plan.clocks, plan.people, plan.first_tid)
        tickets: list[tuple] = []
        events: list[tuple] = []
        open_count = 0
        for key in plan.arrivals[lo: lo + plan.batch_size]:
            spec = picker.spec(tid, key >> 1, bool(key & 1), plan.end, stall_p)
            life = live(world, spec)
            sla_cols = _sla(spec, life, plan.policies.get(spec.priority), plan.clocks.get(spec.priority), plan.end)
            tickets.append(ticket_row(spec, life, sla_cols, policy_json.get(spec.priority), fmt))
            eid = event_rows(eid, tid, life.events, fmt, events)
            open_count += life.status in OPEN
            tid += 1
        yield tickets, events, tid - 1, eid - 1, open_count


# --- arrivals and the backlog -----------------------------------------------------------------------


def arrivals_for(rng: random.Random, n: int, start: int, end: int, tz: str) -> list[int]:
    """Creation times, sorted, each encoded ``time << 1 | is_alert``: user tickets follow weekdays and office
    hours, alerts come at any hour; both grow about a quarter a year."""
    zone = ZoneInfo(tz)
    day = datetime.fromtimestamp(start, UTC).astimezone(zone).date()
    last = datetime.fromtimestamp(end, UTC).astimezone(zone).date()
    midnights, user_w, alert_w = [], [], []
    while day <= last:
        midnight = int(datetime.combine(day, time(0), tzinfo=zone).timestamp())
        growth = 1.25 ** ((midnight - start) / YEAR)
        midnights.append(midnight)
        user_w.append(growth * _DOW[day.weekday()])
        alert_w.append(growth)
        day += timedelta(days=1)
    n_alert = round(n * ALERT_SHARE)
    out = []
    days = range(len(midnights))
    hours = rng.choices(range(24), weights=_HOURS, k=n - n_alert)
    for d, h in zip(rng.choices(days, weights=user_w, k=n - n_alert), hours, strict=True):
        out.append(_clip(rng, midnights[d] + h * 3600 + rng.randrange(3600), start, end) << 1)
    for d in rng.choices(days, weights=alert_w, k=n_alert):
        out.append(_clip(rng, midnights[d] + rng.randrange(86400), start, end) << 1 | 1)
    out.sort()
    return out


def _clip(rng: random.Random, t: int, start: int, end: int) -> int:
    if t >= end:
        return end - 1 - rng.randrange(min(6 * 3600, end - start))
    if t < start:
        return start + rng.randrange(min(86400, end - start))
    return t


def _stall_curve(arrivals: Sequence[int], end: int) -> Callable[[float], float]:
    """Chance that a ticket of a given age is still open: high for the last weeks, a little for older ones.

    Scaled so that about ``OPEN_TARGET`` of all tickets end open (a little is left for the tickets whose
    story simply has not finished by now).
    """
    tau, floor = 30.0, 0.002
    buckets: dict[int, int] = {}
    for key in arrivals:
        age = (end - (key >> 1)) // 86400
        buckets[age] = buckets.get(age, 0) + 1
    want = max(0.0, (OPEN_TARGET - 0.01 - floor) * len(arrivals))

    def total(k: float) -> float:
        return sum(c * min(0.9, k * math.exp(-a / tau)) for a, c in buckets.items())

    lo, hi = 0.0, 1.0
    while total(hi) < want and hi < 1e6:
        hi *= 2
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if total(mid) < want else (lo, mid)
    k = hi

    def p(age_days: float) -> float:
        return min(0.9, k * math.exp(-age_days / tau)) + floor

    return p


class _SpecMaker:
    """Chooses what intake records for each ticket: channel, category, priority, requester, device, text."""

    def __init__(self, rng: random.Random, categories: dict[str, int], policies: dict[int, dict],
                 clocks: dict[int, FastClock | None], people: People, first_id: int) -> None:
        self.rng, self.people, self.policies, self.clocks = rng, people, policies, clocks
        self.text = SpecText(rng, people)
        self.first_id = first_id
        names = list(categories)
        self.user_cats = _weighted(names, _USER_CATEGORIES)
        self.alert_cats = _weighted(names, _ALERT_CATEGORIES)
        self.cat_ids = categories
        self.outage: tuple[int, int, int] | None = None  # parent id, until, category id
        self.fallback_clock = FastClock(BusinessCalendar.twenty_four_seven(), 0, 1)

    def spec(self, tid: int, created: int, alert: bool, end: int, stall_p: Callable[[float], float]) -> Spec:
        rng = self.rng
        names, weights = self.alert_cats if alert else self.user_cats
        category = rng.choices(names, cum_weights=weights)[0]
        priority = rng.choices((1, 2, 3, 4), cum_weights=_ALERT_PRIORITIES if alert else _USER_PRIORITIES)[0]
        channel = Channel.ALERT.value if alert else rng.choices(_CHANNELS, cum_weights=_CHANNEL_CUM)[0]
        requester = None if alert else self.people.pick_requester()
        if requester and channel == Channel.EMAIL.value and not requester[2]:
            channel = Channel.PHONE.value
        pol = self.policies.get(priority)
        clock = self.clocks.get(priority) or self.fallback_clock
        stall = None
        if rng.random() < stall_p((end - created) / 86400):
            stall = rng.choices(_STALLS, cum_weights=(8, 25, 70, 70 if alert else 90, 100))[0]
        outcome = "normal"
        if stall is None:
            r = rng.random()
            if alert:
                outcome = "false_alarm" if r < 0.65 else "normal"
            elif r < 0.03:
                outcome = "duplicate" if tid > self.first_id else "cancelled"
            elif r < 0.06:
                outcome = "cancelled"
        cat_id = self.cat_ids[category]
        summary, body, device_id = self.text.make(category, alert, requester)
        spec = Spec(tid=tid, created=created, priority=priority, category_id=cat_id, category=category,
                    channel=channel, clock=clock,
                    response_secs=(pol["response_minutes"] if pol else 240) * 60,
                    resolution_secs=(pol["resolution_minutes"] if pol else 2400) * 60,
                    summary=summary, body=body, requester=requester, device_id=device_id,
                    outcome=outcome, stall=stall)
        if outcome == "duplicate":
            spec.duplicate_of = rng.randrange(max(self.first_id, tid - 300), tid)
        if self.outage and created <= self.outage[1] and cat_id == self.outage[2] and rng.random() < 0.6:
            spec.parent_id = self.outage[0]
        elif priority == 4 and rng.random() < 0.4:
            self.outage = (tid, created + 2 * 3600, cat_id)
        return spec


def _weighted(names: list[str], wanted: dict[str, int]) -> tuple[list[str], list[float]]:
    chosen = [n for n in names if n in wanted] or names
    cum, total = [], 0.0
    for n in chosen:
        total += wanted.get(n, 1)
        cum.append(total)
    return chosen, cum


# --- SLA ----------------------------------------------------------------------------------------------


def _sla(s: Spec, L: TicketLife, policy: dict | None, clock: FastClock | None, now: int) -> tuple:
    """(response due, response risk, resolution due, resolution risk, response breached, resolution breached),
    and the breach events added to the life, as ``lib.sla.refresh``/``check_breaches`` would leave them."""
    if not policy or clock is None:
        return (None,) * 6
    share = float(policy.get("risk_share", sla.DEFAULT_RISK_SHARE))
    resp, res = policy["response_minutes"] * 60, policy["resolution_minutes"] * 60
    running = running_intervals(s.created, L.history)
    r_due: Seconds | None
    r_risk: Seconds | None
    z_due: Seconds | None
    z_risk: Seconds | None
    if L.status == CLOSED:
        r_due, r_risk = clock.add(s.created, resp), clock.add(s.created, resp * share)
        z_due, z_risk = clock.due_with_pauses(s.created, res, running), clock.due_with_pauses(s.created, res * share, running)
    else:  # the tickets people will still work on: computed exactly as the services do
        def dt(x):
            return datetime.fromtimestamp(x, UTC)

        response, resolution = sla.compute(policy, created_at=dt(s.created),
                                           intervals=[(dt(a), None if b is None else dt(b)) for a, b in running])
        r_due, r_risk, z_due, z_risk = (None if x is None else _epoch(x) for x in (
            response.due_at, response.risk_at, resolution.due_at, resolution.risk_at))
    responded = min((x for x in (L.acknowledged, L.first_response) if x is not None), default=None)
    r_breach = z_breach = None
    if r_due is not None and r_due <= (responded if responded is not None else now) and (
            responded is None or responded > r_due):
        r_breach = r_due
        _breach_event(L, s, "response", r_due)
    if z_due is not None and z_due <= now:
        z_breach = z_due
        _breach_event(L, s, "resolution", z_due)
    if r_breach is not None or z_breach is not None:
        L.events.sort(key=lambda e: e[0])
    return r_due, r_risk, z_due, z_risk, r_breach, z_breach


def _epoch(moment: datetime) -> int | float:
    x = moment.timestamp()
    return int(x) if x == int(x) else x


def _breach_event(L: TicketLife, s: Spec, clock: str, due: int | float) -> None:
    when = datetime.fromtimestamp(due, UTC)
    L.events.append((max(due, s.created), EventKind.SLA_BREACHED.value, None, "system", None, None, None, None, None,
                     f"{clock.capitalize()} target missed (due {when:%Y-%m-%d %H:%M} UTC)", False, None,
                     {"clock": clock, "due_at": when.isoformat(), "priority": s.priority}))
