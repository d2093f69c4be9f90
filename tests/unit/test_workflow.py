"""The workflow rules as pure data: every transition, every guard, the role matrix, and the docs that show them.

The expected tables below are written out by hand on purpose: changing a rule in lib/workflow.py means
changing the spec here too, and regenerating the doc tables with

    .venv/bin/python -m tests.unit.test_workflow
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lib.errors import TransitionNotAllowed
from lib.workflow import (
    PERMISSIONS,
    ROLE_RULES,
    TRANSITIONS,
    Action,
    ClosureReason,
    EscalationLevel,
    Permission,
    Role,
    Status,
    TicketFacts,
    Who,
    allowed_actions,
    closure_missing,
    is_allowed,
    may,
    next_status,
    permission_matrix,
    reopen_missing,
    resolve_missing,
    role_matrix,
)

ROOT = Path(__file__).resolve().parents[2]
N, A, P, WU, WV, R, AC, C = (Status.NEW, Status.ASSIGNED, Status.IN_PROGRESS, Status.WAITING_USER,
                             Status.WAITING_VENDOR, Status.RESOLVED, Status.AWAITING_CONFIRMATION, Status.CLOSED)
NOT_CLOSED = (N, A, P, WU, WV, R, AC)
WORKING = (A, P, WU, WV)
STAY = None

# (action) -> {from status: to status, STAY = unchanged}. Anything not listed is refused.
EXPECTED: dict[Action, dict[Status, Status | None]] = {
    Action.UPDATE_FIELDS: dict.fromkeys(NOT_CLOSED, STAY),
    Action.TAKE: {N: A, WU: STAY, WV: STAY},
    Action.ASSIGN: {N: A, A: A, P: A, WU: STAY, WV: STAY, R: STAY, AC: STAY},
    Action.ACKNOWLEDGE: {A: P},
    Action.LOG_ACTION: dict.fromkeys(NOT_CLOSED, STAY),
    Action.WORKAROUND: dict.fromkeys(WORKING, STAY),
    Action.PUBLIC_REPLY: dict.fromkeys(NOT_CLOSED, STAY),
    Action.INTERNAL_NOTE: dict.fromkeys((*NOT_CLOSED, C), STAY),
    Action.REQUEST_INFO: dict.fromkeys((N, A, P, WV), WU),
    Action.ESCALATE_SENIOR: dict.fromkeys((N, *WORKING), A),
    Action.ESCALATE_VENDOR: dict.fromkeys((A, P, WU), WV),
    Action.RESUME: dict.fromkeys((WU, WV), P),
    Action.RESOLVE: dict.fromkeys(WORKING, R),
    Action.REQUEST_CONFIRMATION: {R: AC, AC: STAY},
    Action.RECORD_CONFIRMATION: {R: STAY, AC: STAY},
    Action.CLOSE: dict.fromkeys(NOT_CLOSED, C),
    Action.REOPEN: dict.fromkeys((R, AC, C), P),
    Action.LINK: dict.fromkeys(NOT_CLOSED, STAY),
}
EXPECTED_PAIRS = {(s, a): to for a, row in EXPECTED.items() for s, to in row.items()}
ALL_PAIRS = [(s, a) for s in Status for a in Action]


def test_transition_table_is_exactly_the_spec():
    assert TRANSITIONS == EXPECTED_PAIRS


@pytest.mark.parametrize(("status", "action"), [p for p in ALL_PAIRS if p in EXPECTED_PAIRS],
                         ids=lambda v: str(v))
def test_allowed_pair(status, action):
    to = EXPECTED_PAIRS[(status, action)]
    assert is_allowed(status, action)
    assert action in allowed_actions(status)
    assert next_status(status, action) is (status if to is None else to)
    assert next_status(status.value, action) is (status if to is None else to)  # the stored string works too


@pytest.mark.parametrize(("status", "action"), [p for p in ALL_PAIRS if p not in EXPECTED_PAIRS],
                         ids=lambda v: str(v))
def test_refused_pair(status, action):
    assert not is_allowed(status, action)
    with pytest.raises(TransitionNotAllowed) as err:
        next_status(status, action)
    assert status.label.lower() in str(err.value)


def test_closed_is_final_except_reopen_and_notes():
    assert set(allowed_actions(C)) == {Action.INTERNAL_NOTE, Action.REOPEN}


def test_every_status_is_reachable_from_new_and_can_reach_closed():
    graph: dict[Status, set[Status]] = {s: set() for s in Status}
    for (s, _a), to in TRANSITIONS.items():
        graph[s].add(s if to is None else to)
    seen, todo = {N}, [N]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(Status)
    assert all(C in graph[s] for s in NOT_CLOSED)


# --- guards ------------------------------------------------------------------------------------

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
WAIT = timedelta(days=5)


def facts(**kw) -> TicketFacts:
    base = dict(status=R, assignee_id=7, resolution_notes="Replaced the toner", root_cause="Empty toner",
                root_cause_unknown_reason=None, confirmed_at=NOW - timedelta(hours=1), confirmation_via="phone",
                confirmed_by="Ann", confirmation_requested_at=NOW - timedelta(days=1), action_count=1,
                closed_at=None, last_requester_reply_at=None)
    base.update(kw)
    return TicketFacts(**base)


def missing(reason: ClosureReason, f: TicketFacts, **kw) -> list[str]:
    return closure_missing(reason, f, now=kw.pop("now", NOW), confirmation_wait=WAIT, **kw)


class TestConfirmedClosure:
    def test_complete(self):
        assert missing(ClosureReason.CONFIRMED, facts()) == []
        assert missing(ClosureReason.CONFIRMED, facts(status=AC)) == []

    def test_root_cause_not_identified_with_a_reason_is_enough(self):
        f = facts(root_cause=None, root_cause_unknown_reason="Could not reproduce after the reboot")
        assert missing(ClosureReason.CONFIRMED, f) == []

    @pytest.mark.parametrize(("change", "expected"), [
        ({"status": P}, "resolved first"),
        ({"confirmed_at": None}, "confirmation"),
        ({"resolution_notes": None}, "resolution notes"),
        ({"resolution_notes": "   \n"}, "resolution notes"),
        ({"action_count": 0}, "documented action"),
        ({"root_cause": None}, "root cause"),
        ({"root_cause": " ", "root_cause_unknown_reason": "\t"}, "root cause"),
    ])
    def test_each_missing_piece_is_named(self, change, expected):
        got = missing(ClosureReason.CONFIRMED, facts(**change))
        assert len(got) == 1 and expected in got[0]

    def test_everything_missing_lists_everything(self):
        got = missing(ClosureReason.CONFIRMED, facts(status=P, confirmed_at=None, resolution_notes=None,
                                                      action_count=0, root_cause=None))
        assert len(got) == 5


class TestNoReplyClosure:
    def test_after_the_wait(self):
        f = facts(confirmed_at=None, confirmation_requested_at=NOW - WAIT)
        assert missing(ClosureReason.NO_REPLY, f) == []  # exactly at the end of the wait
        assert missing(ClosureReason.NO_REPLY, facts(status=AC, confirmation_requested_at=NOW - WAIT * 2)) == []

    def test_not_before_the_wait(self):
        f = facts(status=AC, confirmation_requested_at=NOW - WAIT + timedelta(seconds=1))
        got = missing(ClosureReason.NO_REPLY, f)
        assert len(got) == 1 and "5-day wait" in got[0] and "(ends Mon 10 Mar 2025 12:00)" in got[0]

    def test_the_end_of_the_wait_is_in_desk_time(self, monkeypatch):
        from lib.config import get_settings

        monkeypatch.setenv("HELPDESK_TIMEZONE", "America/New_York")  # on summer time since 9 March: UTC-4
        get_settings.cache_clear()
        try:
            f = facts(status=AC, confirmation_requested_at=NOW - WAIT + timedelta(seconds=1))
            assert "(ends Mon 10 Mar 2025 08:00)" in missing(ClosureReason.NO_REPLY, f)[0]
        finally:
            get_settings.cache_clear()

    def test_needs_a_confirmation_request(self):
        got = missing(ClosureReason.NO_REPLY, facts(confirmation_requested_at=None))
        assert len(got) == 1 and "confirmation request" in got[0]

    def test_needs_resolution_and_notes(self):
        got = missing(ClosureReason.NO_REPLY, facts(status=P, resolution_notes=None,
                                                     confirmation_requested_at=NOW - WAIT * 2))
        assert any("resolved first" in m for m in got) and any("resolution notes" in m for m in got)

    def test_a_reply_after_the_request_is_not_no_reply(self):
        asked = NOW - WAIT * 2
        got = missing(ClosureReason.NO_REPLY, facts(status=AC, confirmation_requested_at=asked,
                                                     last_requester_reply_at=asked + timedelta(days=1)))
        assert len(got) == 1 and "replied" in got[0]
        earlier = facts(status=AC, confirmation_requested_at=asked, last_requester_reply_at=asked - timedelta(days=1))
        assert missing(ClosureReason.NO_REPLY, earlier) == []


class TestOtherClosures:
    def test_duplicate_needs_another_ticket(self):
        assert "duplicates (its number)" in missing(ClosureReason.DUPLICATE, facts(status=N))[0]
        assert "itself" in missing(ClosureReason.DUPLICATE, facts(status=N), duplicate_of=5, ticket_id=5)[0]
        assert missing(ClosureReason.DUPLICATE, facts(status=N), duplicate_of=4, ticket_id=5) == []

    @pytest.mark.parametrize("reason", [ClosureReason.CANCELLED, ClosureReason.NOT_APPLICABLE])
    def test_cancelled_and_not_applicable_need_a_note(self, reason):
        bare = facts(status=N, resolution_notes=None, confirmed_at=None, action_count=0, root_cause=None)
        assert len(missing(reason, bare)) == 1
        assert len(missing(reason, bare, note="  ")) == 1
        assert missing(reason, bare, note="The user fixed it themselves") == []

    def test_every_reason_has_a_guard(self):
        bare = facts(status=N, resolution_notes=None, confirmed_at=None, action_count=0, root_cause=None,
                     confirmation_requested_at=None)
        for reason in ClosureReason:
            assert missing(reason, bare), reason


def test_resolve_guard():
    assert resolve_missing(facts(status=P), resolution_notes="Fixed") == []
    assert resolve_missing(facts(status=P, resolution_notes=None), resolution_notes="Fixed") == []
    assert resolve_missing(facts(status=P), resolution_notes=None) == []  # notes already on the ticket
    got = resolve_missing(facts(status=N, assignee_id=None, resolution_notes=None), resolution_notes=" ")
    assert len(got) == 2 and "assignee" in got[0] and "resolution notes" in got[1]


class TestReopenWindow:
    window = timedelta(days=14)

    def test_within_and_at_the_window(self):
        closed = facts(status=C, closed_at=NOW - self.window)
        assert reopen_missing(closed, now=NOW, window=self.window) == []
        assert reopen_missing(facts(status=C, closed_at=NOW - timedelta(days=1)), now=NOW, window=self.window) == []

    def test_after_the_window(self):
        late = facts(status=C, closed_at=NOW - self.window - timedelta(seconds=1))
        got = reopen_missing(late, now=NOW, window=self.window)
        assert len(got) == 1 and "14 days" in got[0] and "new ticket" in got[0]

    def test_resolved_tickets_are_not_limited(self):
        assert reopen_missing(facts(status=R), now=NOW, window=self.window) == []
        assert reopen_missing(facts(status=AC), now=NOW, window=self.window) == []


# --- roles -------------------------------------------------------------------------------------

ME, OTHER = 1, 2
SITUATIONS = {
    "own": (ME, EscalationLevel.TECHNICIAN),
    "other's": (OTHER, EscalationLevel.TECHNICIAN),
    "escalated": (OTHER, EscalationLevel.SENIOR),
    "at vendor": (OTHER, EscalationLevel.VENDOR),
    "unassigned": (None, EscalationLevel.TECHNICIAN),
    "unassigned escalated": (None, EscalationLevel.SENIOR),
}
ESCALATED = {"escalated", "at vendor", "unassigned escalated"}
EXPECTED_RULES: dict[Action, Who] = {
    Action.CREATE: Who.ANY_STAFF, Action.TAKE: Who.ANY_STAFF, Action.INTERNAL_NOTE: Who.ANY_STAFF,
    Action.REOPEN: Who.ANY_STAFF, Action.ACKNOWLEDGE: Who.ASSIGNEE,
    Action.ASSIGN: Who.LEAD, Action.BULK_UPDATE: Who.LEAD, Action.OVERRIDE_GUARD: Who.LEAD, Action.ADMIN: Who.LEAD,
    **{a: Who.WORKER for a in (Action.UPDATE_FIELDS, Action.LOG_ACTION, Action.WORKAROUND, Action.PUBLIC_REPLY,
                               Action.REQUEST_INFO, Action.ESCALATE_SENIOR, Action.ESCALATE_VENDOR, Action.RESUME,
                               Action.RESOLVE, Action.REQUEST_CONFIRMATION, Action.RECORD_CONFIRMATION,
                               Action.CLOSE, Action.LINK)},
}


def expected_may(who: Who, role: Role, situation: str) -> bool:
    if role is Role.LEAD or who is Who.ANY_STAFF:
        return True
    if who is Who.LEAD:
        return False
    if situation == "own":
        return True
    return who is Who.WORKER and role is Role.SENIOR and situation in ESCALATED


def test_every_action_has_a_rule():
    assert ROLE_RULES == EXPECTED_RULES
    assert set(ROLE_RULES) == set(Action)


@pytest.mark.parametrize("action", list(Action), ids=str)
@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.key)
@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_may(action, role, situation):
    assignee, level = SITUATIONS[situation]
    got = may(action, role=role, actor_id=ME, assignee_id=assignee, escalation=level)
    assert got is expected_may(EXPECTED_RULES[action], role, situation)


def test_lead_includes_senior_includes_technician():
    for action in Action:
        for assignee, level in SITUATIONS.values():
            tech, senior, lead = (may(action, role=r, actor_id=ME, assignee_id=assignee, escalation=level)
                                  for r in (Role.TECHNICIAN, Role.SENIOR, Role.LEAD))
            assert tech <= senior <= lead, action


def test_role_matrix_rows_match_may():
    """Each cell of the documented matrix says exactly what may() answers."""
    meaning = {
        "yes": set(SITUATIONS),
        "no": set(),
        "own": {"own"},
        "own + escalated": {"own"} | ESCALATED,
    }
    rows = role_matrix()
    assert [r["action"] for r in rows] == [a.label for a in ROLE_RULES]
    for row, action in zip(rows, ROLE_RULES, strict=True):
        assert row["who"] == ROLE_RULES[action].value
        for role in Role:
            allowed = {s for s, (assignee, level) in SITUATIONS.items()
                       if may(action, role=role, actor_id=ME, assignee_id=assignee, escalation=level)}
            assert allowed == meaning[row[role.label]], (action, role)


def test_role_matrix_examples():
    by_action = {r["action"]: r for r in role_matrix()}
    assert by_action["Take"] == {"action": "Take", "who": Who.ANY_STAFF.value, "Technician": "yes",
                                 "Senior technician": "yes", "Team lead": "yes"}
    assert by_action["Resolve"]["Technician"] == "own"
    assert by_action["Resolve"]["Senior technician"] == "own + escalated"
    assert by_action["Acknowledge"]["Senior technician"] == "own"
    assert by_action["Assign"]["Senior technician"] == "no"
    assert by_action["Override guard"]["Team lead"] == "yes"


# --- the docs show the code's tables -----------------------------------------------------------

ROLE_HEADER = "| Action | Technician | Senior technician | Team lead | Who |"


def role_table() -> list[str]:
    lines = [ROLE_HEADER, "|---|---|---|---|---|"]
    for row in role_matrix():
        cells = [row["action"], *(row[r.label] for r in Role), row["who"]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


PERMISSION_HEADER = "| Desk-wide permission | Technician | Senior technician | Team lead |"


def permission_table() -> list[str]:
    lines = [PERMISSION_HEADER, "|---|---|---|---|"]
    for row in permission_matrix():
        lines.append("| " + " | ".join([row["permission"], *(row[r.label] for r in Role)]) + " |")
    return lines


TRANSITION_HEADER = "| Action | From | To |"
UNCHANGED = "(unchanged)"


def transition_table() -> list[str]:
    """One row per action and target: the statuses it is allowed from, in workflow order."""
    lines = [TRANSITION_HEADER, "|---|---|---|"]
    for action in Action:
        targets: dict[Status | None, list[Status]] = {}
        for status in Status:
            if (status, action) in TRANSITIONS:
                targets.setdefault(TRANSITIONS[(status, action)], []).append(status)
        for to, froms in targets.items():
            lines.append(f"| {action.label} | {', '.join(s.label for s in froms)} | "
                         f"{UNCHANGED if to is None else to.label} |")
    return lines


def _section(doc: Path, name: str) -> list[str]:
    text = doc.read_text(encoding="utf-8")
    m = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert m, f"{doc} lacks the <!-- {name}:start --> ... <!-- {name}:end --> markers"
    return [line.strip() for line in m.group(1).splitlines() if line.strip().startswith("|")]


def test_docs_roles_md_contains_every_row_of_the_role_matrix():
    lines = _section(ROOT / "docs" / "roles.md", "role-matrix")
    assert lines == role_table(), "docs/roles.md drifted from lib.workflow; regenerate: .venv/bin/python -m tests.unit.test_workflow"


def test_docs_roles_md_lists_every_desk_wide_permission():
    lines = _section(ROOT / "docs" / "roles.md", "permissions")
    assert lines == permission_table(), "docs/roles.md drifted from lib.workflow; regenerate: .venv/bin/python -m tests.unit.test_workflow"
    assert set(PERMISSIONS) == set(Permission), "every permission has its lowest role"


def test_docs_workflow_md_transition_table_matches_the_code():
    lines = _section(ROOT / "docs" / "workflow.md", "transitions")
    assert lines == transition_table(), "docs/workflow.md drifted; regenerate: .venv/bin/python -m tests.unit.test_workflow"
    # and read back, the doc's table is exactly TRANSITIONS
    actions = {a.label: a for a in Action}
    statuses = {s.label: s for s in Status}
    parsed = {}
    for line in lines[2:]:
        action, froms, to = (c.strip() for c in line.strip("|").split("|"))
        for f in froms.split(", "):
            parsed[(statuses[f], actions[action])] = None if to == UNCHANGED else statuses[to]
    assert parsed == TRANSITIONS


def test_docs_name_every_status_and_closure_reason():
    text = (ROOT / "docs" / "workflow.md").read_text(encoding="utf-8")
    for status in Status:
        assert f"`{status.value}`" in text and status.label in text
    for reason in ClosureReason:
        assert f"`{reason.value}`" in text and reason.label in text


if __name__ == "__main__":  # print the doc tables
    print("<!-- transitions:start -->")
    print("\n".join(transition_table()))
    print("<!-- transitions:end -->\n")
    print("<!-- role-matrix:start -->")
    print("\n".join(role_table()))
    print("<!-- role-matrix:end -->\n")
    print("<!-- permissions:start -->")
    print("\n".join(permission_table()))
    print("<!-- permissions:end -->")
