"""The meaning of a status lives in lib/workflow.py alone: a new status needs its row in STATUS_INFO and its
transitions, and nothing else. Shown on a scratch copy of lib/ with one status added."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ADD_STATUS = '''    WAITING_VENDOR = "waiting_vendor"
    ON_HOLD = "on_hold"
'''
ADD_INFO = '''    Status.CLOSED: StatusInfo("Closed", "🔒", open=False, resolved=False, sla_clock="stopped"),
    Status.ON_HOLD: StatusInfo("On hold", "⏸️", open=True, resolved=False, sla_clock="paused"),
'''
ADD_TRANSITIONS = '''_allow(_NOT_CLOSED, Action.LINK, None)
_allow((S.IN_PROGRESS,), Action.REQUEST_INFO, S.ON_HOLD)
_allow((S.ON_HOLD,), Action.RESUME, S.IN_PROGRESS)
_allow((S.ON_HOLD,), Action.CLOSE, S.CLOSED)
'''

CHECK = '''
import importlib, pkgutil, sys
import lib
for info in pkgutil.walk_packages(lib.__path__, "lib."):
    importlib.import_module(info.name)
from lib import models, queries, sla
from lib.ui import core
from lib.workflow import (OPEN_STATUSES, PAUSED_STATUSES, RUNNING_STATUSES, STATUS_ICONS, STATUS_LABELS, Status,
                          allowed_actions)
on_hold = Status("on_hold")
assert on_hold in OPEN_STATUSES and on_hold in PAUSED_STATUSES and on_hold not in RUNNING_STATUSES
assert STATUS_LABELS[on_hold] == "On hold" and STATUS_ICONS[on_hold] == "⏸️" and on_hold.label == "On hold"
assert "'on_hold'" in models.BACKLOG_EVENT_PREDICATE
assert sla.OPEN_STATUSES is OPEN_STATUSES and on_hold in sla.PAUSED_STATUSES
assert {a.value for a in allowed_actions(on_hold)} >= {"resume", "close"}
assert core.status_badge_md(on_hold) == ":green-badge[⏸️ On hold]"
print("ok")
'''


def test_a_new_status_needs_only_its_row_and_its_transitions(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "lib", tmp_path / "lib", ignore=shutil.ignore_patterns("__pycache__"))
    workflow = tmp_path / "lib" / "workflow.py"
    text = workflow.read_text(encoding="utf-8")
    for anchor, added in ((ADD_STATUS.splitlines(True)[0], ADD_STATUS), (ADD_INFO.splitlines(True)[0], ADD_INFO),
                          (ADD_TRANSITIONS.splitlines(True)[0], ADD_TRANSITIONS)):
        assert text.count(anchor) == 1, f"anchor moved in lib/workflow.py: {anchor!r}"
        text = text.replace(anchor, added)
    workflow.write_text(text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]
