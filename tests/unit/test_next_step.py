"""The ticket page's primary next step per status, and whether an escalation is still in force (pure rules)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lib.ui.next_step import PAGE_ACTIONS, escalation_now, plan
from lib.workflow import Action, EscalationLevel, Role, Status, allowed_actions, may

A = Action


def lead_can(status: Status) -> list[Action]:
    return [a for a in allowed_actions(status) if may(a, role=Role.LEAD, actor_id=1, assignee_id=2)]


@pytest.mark.parametrize(("status", "assigned", "confirmed", "primary"), [
    (Status.NEW, False, False, A.TAKE),
    (Status.NEW, True, False, A.ASSIGN),
    (Status.ASSIGNED, True, False, A.ACKNOWLEDGE),
    (Status.IN_PROGRESS, True, False, A.RESOLVE),
    (Status.WAITING_USER, True, False, A.RESUME),
    (Status.WAITING_VENDOR, True, False, A.RESUME),
    (Status.RESOLVED, True, False, A.REQUEST_CONFIRMATION),
    (Status.AWAITING_CONFIRMATION, True, False, A.RECORD_CONFIRMATION),
    (Status.AWAITING_CONFIRMATION, True, True, A.CLOSE),
    (Status.CLOSED, True, False, A.REOPEN),
])
def test_the_primary_step_per_status(status: Status, assigned: bool, confirmed: bool, primary: Action) -> None:
    steps = plan(status, lead_can(status), assigned=assigned, confirmed=confirmed)
    assert steps.primary is primary
    assert primary not in steps.others
    # every page action the lead may do is offered exactly once
    expected = {a for a in lead_can(status) if a in PAGE_ACTIONS}
    if assigned:
        expected.discard(A.TAKE)
    if confirmed:
        expected.discard(A.RECORD_CONFIRMATION)
    assert sorted(steps.all) == sorted(expected) and len(steps.all) == len(set(steps.all))


def test_without_the_preferred_step_the_first_allowed_one_is_primary() -> None:
    steps = plan(Status.IN_PROGRESS, [A.LINK, A.CLOSE], assigned=True, confirmed=False)
    assert steps.primary is A.CLOSE and steps.others == [A.LINK]
    assert plan(Status.IN_PROGRESS, [], assigned=True, confirmed=False).primary is None


@dataclass(frozen=True)
class E:
    kind: str
    meta: dict | None = None


VENDOR = E("escalated", {"level": "vendor"})
SENIOR = E("escalated", {"level": "senior"})


def test_an_escalation_ends_with_the_work_it_was_for() -> None:
    assert escalation_now(Status.WAITING_VENDOR, [E("created"), VENDOR]) is EscalationLevel.VENDOR
    assert escalation_now(Status.IN_PROGRESS, [E("created"), VENDOR, E("resumed")]) is EscalationLevel.VENDOR
    assert escalation_now(Status.RESOLVED, [VENDOR, E("resolved")]) is None
    assert escalation_now(Status.CLOSED, [VENDOR, E("closed")], level=2) is None
    assert escalation_now(Status.IN_PROGRESS, [VENDOR, E("resolved"), E("reopened")], level=2) is None
    assert escalation_now(Status.ASSIGNED, [VENDOR, E("reopened"), SENIOR], level=2) is EscalationLevel.SENIOR
    # history without events (an import): the ticket's own level, while it is open
    assert escalation_now(Status.IN_PROGRESS, [E("created")], level=1) is EscalationLevel.SENIOR
    assert escalation_now(Status.CLOSED, [E("created")], level=1) is None
