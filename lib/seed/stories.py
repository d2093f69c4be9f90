"""The stories of demo tickets: which steps a ticket goes through, when, and by whom (see ``lib.seed.life``).

Staff work in the clock of the ticket's SLA policy (business hours, or around the clock for Critical);
users and vendors answer in the desk's business hours. Durations are drawn so that about nine in ten
tickets meet their response and resolution targets.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

from lib.models import ticket_ref
from lib.seed.business_seconds import Seconds
from lib.seed.data import ACTIONS, CANCEL_NOTES, RESOLUTIONS, ROOT_CAUSES, UNKNOWN_CAUSES, VENDORS
from lib.seed.life import (
    ASSIGNED,
    IN_PROGRESS,
    NEW,
    WAITING_USER,
    WAITING_VENDOR,
    Person,
    Spec,
    Stop,
    TicketLife,
    World,
)
from lib.workflow import Channel, ClosureReason, ConfirmationVia

DAY = 86400
HOUR = 3600


def _lognorm(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _minutes(rng: random.Random, median: float = 20) -> int:
    return max(2, min(240, round(_lognorm(rng, median, 0.6))))


def _act(w: World, L: TicketLife, t: Seconds, who: Person, kind: str) -> None:
    L.action(t, who, kind, w.rng.choice(ACTIONS[kind]), _minutes(w.rng))


def live(w: World, s: Spec) -> TicketLife:
    """Play a ticket's life up to ``now``."""
    L = TicketLife(tid=s.tid, created=s.created, now=w.now)
    try:
        if s.channel == Channel.ALERT.value:
            _alert_story(w, s, L)
        else:
            _user_story(w, s, L)
    except Stop:
        pass
    return L


def _response_delay(w: World, s: Spec) -> float:
    """Time to acknowledge, in the policy's clock: mostly well inside the target, about one in ten late."""
    return max(60.0, s.response_secs * _lognorm(w.rng, 0.35, 0.8))


def _user_story(w: World, s: Spec, L: TicketLife) -> None:
    rng, clock = w.rng, s.clock
    req_name, req_email = (s.requester[1], s.requester[2]) if s.requester else ("the user", None)
    tech = w.pick_tech(s.category_id)
    taker = tech if s.channel in (Channel.PHONE.value, Channel.WALK_IN.value, Channel.ON_BEHALF.value) else None
    label = None if taker is not None else f"{req_name} <{req_email}> (e-mail)" if req_email else "system"
    L.create(s.created, taker, label, s.body, {"channel": s.channel, "priority": s.priority, "category": s.category})
    if s.stall == NEW:
        raise Stop
    delay = _response_delay(w, s)
    t = clock.add(s.created, delay * rng.uniform(0.1, 0.6))
    L.assign(t, tech if taker is not None and rng.random() < 0.7 else w.lead, tech)
    if s.parent_id is not None:
        L.link(t + rng.randrange(60, 900), tech, s.parent_id)
    if s.outcome == "duplicate" and rng.random() < 0.5:
        assert s.duplicate_of is not None  # a duplicate's spec always names the original
        L.close(clock.add(t, rng.randrange(300, 3 * HOUR)), tech, ClosureReason.DUPLICATE,
                f"Same issue as {ticket_ref(s.duplicate_of)}", duplicate_of=s.duplicate_of)
        return
    if s.stall == ASSIGNED:
        raise Stop
    t = clock.add(s.created, delay)
    L.acknowledge(t, tech)
    if rng.random() < 0.25:
        L.reply(t + rng.randrange(60, 1200), tech, f"Hello {req_name.split()[0]}, we are looking into this now.")
    if s.outcome == "duplicate":
        assert s.duplicate_of is not None  # a duplicate's spec always names the original
        L.close(clock.add(t, rng.randrange(600, 4 * HOUR)), tech, ClosureReason.DUPLICATE,
                f"Same issue as {ticket_ref(s.duplicate_of)}", duplicate_of=s.duplicate_of)
        return
    budget = max(900.0, s.resolution_secs * _lognorm(rng, 0.4, 0.75) - clock.between(s.created, t))
    tech, t = _work(w, s, L, tech, t, budget, can_ask_user=True)
    _confirm(w, s, L, tech, t, budget)


def _alert_story(w: World, s: Spec, L: TicketLife) -> None:
    rng, clock = w.rng, s.clock
    L.create(s.created, None, "monitoring", s.body, {"channel": s.channel, "priority": s.priority, "category": s.category})
    if s.stall == NEW:
        raise Stop
    tech = w.pick_tech(s.category_id)
    delay = _response_delay(w, s)
    L.assign(clock.add(s.created, delay * rng.uniform(0.05, 0.3)), None, tech)
    if s.stall == ASSIGNED:
        raise Stop
    t = clock.add(s.created, delay)
    L.acknowledge(t, tech)
    if s.outcome == "false_alarm":
        t = clock.add(t, rng.randrange(300, 2 * HOUR))
        L.action(t, tech, "diagnosis", "Checked the monitored host: the alert cleared by itself", _minutes(rng, 10))
        L.close(t + rng.randrange(60, 900), tech, ClosureReason.NOT_APPLICABLE, "Alert cleared; no user impact")
        return
    budget = max(900.0, s.resolution_secs * _lognorm(rng, 0.4, 0.75) - clock.between(s.created, t))
    tech, t = _work(w, s, L, tech, t, budget, can_ask_user=False)
    L.close(t + rng.randrange(120, 2 * HOUR), tech, ClosureReason.NOT_APPLICABLE,
            "Monitoring alert with no requester: nobody to confirm")


def _work(w: World, s: Spec, L: TicketLife, tech: Person, t: Seconds, budget: float, *,
          can_ask_user: bool) -> tuple[Person, Seconds]:
    """Diagnose, perhaps wait on the user or a vendor, perhaps escalate, then resolve."""
    rng, clock = w.rng, s.clock
    t = clock.add(t, budget * 0.2)
    _act(w, L, t, tech, "diagnosis")
    if s.outcome == "cancelled":
        L.close(w.desk.add(t, _lognorm(rng, 3 * HOUR, 1.0)), tech, ClosureReason.CANCELLED, rng.choice(CANCEL_NOTES))
        raise Stop
    stall = s.stall
    if can_ask_user and (stall == WAITING_USER or rng.random() < 0.2):
        t = clock.add(t, budget * 0.1)
        L.request_info(t, tech, "Could you tell us when this happens and send a screenshot of the error?")
        if stall == WAITING_USER:
            raise Stop
        t = w.desk.add(t, _lognorm(rng, 4 * HOUR, 1.1))
        if s.channel == Channel.EMAIL.value and s.requester and s.requester[2]:
            L.user_reply(t, f"{s.requester[1]} <{s.requester[2]}> (e-mail)", "Here are the details you asked for.")
        else:
            L.resume(t, tech, "User called back with the details")
    if rng.random() < (0.15 if s.priority >= 3 else 0.07) and w.seniors:
        t = clock.add(t, budget * 0.15)
        senior = rng.choice(w.seniors)
        if senior.id != tech.id:
            L.escalate_senior(t, tech, senior, "Needs deeper knowledge than first line; escalating")
            t = clock.add(t, _lognorm(rng, 20 * 60, 0.7))
            L.acknowledge(t, senior)
            tech = senior
            _act(w, L, clock.add(t, budget * 0.05), tech, "reproduction")
    vendor_p = 0.12 if s.category in ("Hardware", "Printing") else 0.03
    if stall == WAITING_VENDOR or rng.random() < vendor_p:
        t = clock.add(t, budget * 0.1)
        vendor = rng.choice(VENDORS)
        promised = t + rng.randrange(1, 6) * DAY
        L.escalate_vendor(t, tech, vendor, f"{vendor.split()[0][:3].upper()}-{rng.randrange(10**6, 10**7)}",
                          datetime.fromtimestamp(promised, UTC).isoformat(), promised)
        if stall == WAITING_VENDOR:
            raise Stop
        t = w.desk.add(t, _lognorm(rng, 2 * 8 * HOUR, 0.8))
        L.resume(t, tech, f"{vendor} delivered the fix")
    if stall == IN_PROGRESS:
        raise Stop
    if rng.random() < 0.1:
        L.give_workaround(clock.add(t, budget * 0.05), tech, "Until this is fixed, please use the web version.")
    for kind in ("reproduction", "troubleshooting")[: rng.choices((0, 1, 2), cum_weights=(45, 85, 100))[0]]:
        t = clock.add(t, budget * 0.15)
        _act(w, L, t, tech, kind)
    if rng.random() < 0.08:
        L.note(t + rng.randrange(60, 1800), tech, "Checked with the team: no related changes this week")
    t = clock.add(t, budget * 0.25)
    known = rng.random() < 0.8
    L.resolve(t, tech, rng.choice(RESOLUTIONS), rng.choice(ROOT_CAUSES) if known else None,
              None if known else rng.choice(UNKNOWN_CAUSES), _minutes(rng, 30))
    return tech, t


_VIAS = (ConfirmationVia.LINK.value, ConfirmationVia.EMAIL.value, ConfirmationVia.PHONE.value,
         ConfirmationVia.IN_PERSON.value)


def _confirm(w: World, s: Spec, L: TicketLife, tech: Person, t: Seconds, budget: float) -> None:
    """Ask the user to confirm, then: confirmed, no reply, or the problem comes back (a reopening)."""
    rng = w.rng
    name = s.requester[1] if s.requester else "the user"
    t = t + rng.randrange(30, 1200)
    L.request_confirmation(t, tech)
    r = rng.random()
    if r < 0.045 and L.reopens < 2:
        L.reopen(w.desk.add(t, _lognorm(rng, 6 * HOUR, 1.0)), tech, "The user reports the problem is back")
        _again(w, s, L, tech, budget)
        return
    if r < 0.195:
        L.close(t + w.confirmation_wait + rng.randrange(HOUR, DAY), None, ClosureReason.NO_REPLY,
                "No reply to the confirmation request", label="worker")
    else:
        t = w.desk.add(t, _lognorm(rng, 5 * HOUR, 1.0))
        via = rng.choices(_VIAS, (50, 20, 20, 10))[0]
        L.confirm(t, None if via == ConfirmationVia.LINK.value else tech, via, name)
        if via == ConfirmationVia.LINK.value and rng.random() < 0.6:
            L.satisfaction = rng.choices((1, 2, 3, 4, 5), (3, 5, 12, 35, 45))[0]
        L.close(t + rng.randrange(60, 3 * HOUR), tech, ClosureReason.CONFIRMED)
    if rng.random() < 0.012 and L.reopens < 2:
        L.reopen(L.t + rng.randrange(2 * HOUR, w.reopen_window - DAY), tech,
                 "The user called: the problem came back")
        _again(w, s, L, tech, budget)


def _again(w: World, s: Spec, L: TicketLife, tech: Person, budget: float) -> None:
    t = s.clock.add(L.t, budget * 0.3)
    _act(w, L, t, tech, "troubleshooting")
    t = s.clock.add(t, budget * 0.3)
    L.resolve(t, tech, w.rng.choice(RESOLUTIONS), w.rng.choice(ROOT_CAUSES), None, _minutes(w.rng, 30))
    _confirm(w, s, L, tech, t, budget)
