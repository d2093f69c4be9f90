"""The linking rule as pure data: a parent assigned to someone else needs Permission.LINK_UNDER_OTHERS."""

from __future__ import annotations

import pytest

from lib.workflow import PERMISSIONS, Permission, Role, has_permission, link_permission, permission_matrix

ME, OTHER = 7, 8


@pytest.mark.parametrize(("parent_assignee", "needed"), [
    (ME, None),  # my own tickets, linked to each other
    (None, None),  # unassigned: anyone may take it first
    (OTHER, Permission.LINK_UNDER_OTHERS),
])
def test_what_linking_under_a_parent_needs(parent_assignee: int | None, needed: Permission | None) -> None:
    assert link_permission(actor_id=ME, parent_assignee_id=parent_assignee) is needed


def test_senior_technicians_and_leads_link_under_others_technicians_do_not() -> None:
    assert PERMISSIONS[Permission.LINK_UNDER_OTHERS] is Role.SENIOR
    assert [has_permission(r, Permission.LINK_UNDER_OTHERS) for r in Role] == [False, True, True]
    row = next(r for r in permission_matrix() if r["permission"] == Permission.LINK_UNDER_OTHERS.label)
    assert (row["Technician"], row["Senior technician"], row["Team lead"]) == ("no", "yes", "yes")
