"""The Admin page's Import tab: upload a CSV, the preview shows the parsed first tickets and the column mapping, a
dry run counts without writing and offers the refused rows as CSV, the import runs in the page; a big file goes to
the background worker and the page follows it."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from lib.config import get_settings
from lib.db import read_session
from lib.models import AuditLog, ImportJob, Ticket
from lib.worker import run_imports
from tests.app.conftest import page_test
from tests.conftest import Staff

HEADER = "external_id,created_at,summary,category,priority,status,assignee,resolved_at,legacy_code"
ROWS = [
    "W-1,2024-03-01T09:15:00Z,Printer jams,Printing,high,,,,X1",
    "W-2,2024-03-02 10:00,VPN drops,networking,2,resolved,tom,2024-03-02T12:00:00Z,X2",
    "W-3,2024-03-05,Laptop fan loud,Hardware,urgent,,,,X3",
]
DATA = (HEADER + "\n" + "\n".join(ROWS) + "\n").encode()


def tickets(engine: Engine) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(Ticket)) or 0


def frame(at: AppTest, column: str) -> pd.DataFrame:
    """The table of the Import tab that has ``column``."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.fixture
def media(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The bytes each run handed to download buttons, by media file id (AppTest keeps them in memory)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    seen: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        if isinstance(path_or_data, bytes):
            seen[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return seen


def downloaded(at: AppTest, media: dict[str, bytes], label: str) -> bytes:
    button = next(b for b in at.get("download_button") if b.proto.label == label)
    return media[button.proto.url.rsplit("/", 1)[-1].split(".")[0]]


def uploaded(app_env: Engine) -> AppTest:
    at = page_test("admin.py", "lead")
    at.run()
    assert not at.exception, at.exception
    at.file_uploader(key="imp_file").upload("tickets.csv", DATA, "text/csv").run()
    assert not at.exception, at.exception
    return at


def test_preview_dry_run_refused_download_and_run(app_env: Engine, staff_app: Staff, media: dict[str, bytes]):
    at = uploaded(app_env)
    mapping, rows = frame(at, "Becomes"), frame(at, "Outcome")
    assert dict(zip(mapping["File column"], mapping["Becomes"], strict=True))["legacy_code"] == "ignored"
    assert list(rows["File rows"]) == ["row 2", "row 3", "row 4"]
    assert list(rows["Priority"])[:2] == ["High", "Medium"]  # parsed, not the file's "high" and "2"
    assert list(rows["Status"])[:2] == ["New", "Resolved"] and list(rows["Assignee"])[1] == "Tom Tech"
    assert list(rows["Outcome"]) == ["would be created", "would be created", "refused"]
    assert "priority 'urgent' is not one of" in list(rows["Problems"])[2]
    assert tickets(app_env) == 0  # the preview wrote nothing

    at.button(key="imp_dry").click().run()
    assert not at.exception, at.exception
    assert metrics(at) == {"Would be created": "2", "Would be updated": "0", "Unchanged": "0", "Refused": "1"}
    assert tickets(app_env) == 0
    refused = list(csv.reader(io.StringIO(downloaded(at, media, "⬇️ Refused rows (CSV)").decode("utf-8-sig"))))
    assert refused[0] == ["row", "reason"] and refused[1][0] == "row 4" and "urgent" in refused[1][1]

    at.button(key="imp_run").click().run()
    assert not at.exception, at.exception
    assert metrics(at) == {"Created": "2", "Updated": "0", "Unchanged": "0", "Refused": "1"}
    assert tickets(app_env) == 2
    assert downloaded(at, media, "⬇️ Refused rows (CSV)").decode("utf-8-sig").count("urgent") == 1
    with read_session(app_env) as s:
        actions = list(s.scalars(select(AuditLog.action).order_by(AuditLog.id)))
    assert actions[-2:] == ["import_started", "import_finished"]
    # The same file again: the preview now says unchanged.
    at.run()
    assert list(frame(at, "Outcome")["Outcome"]) == ["unchanged", "unchanged", "refused"]


def test_a_bad_file_is_explained(app_env: Engine, staff_app: Staff):
    at = page_test("admin.py", "lead")
    at.run()
    at.file_uploader(key="imp_file").upload("odd.csv", b"id,title\n1,x\n", "text/csv").run()
    assert not at.exception, at.exception
    assert any("cannot tell the layout" in e.value for e in at.error)
    assert not [b for b in at.button if b.key == "imp_run"]


def test_a_big_file_runs_in_the_worker_and_the_page_follows_it(app_env: Engine, staff_app: Staff, monkeypatch):
    monkeypatch.setenv("HELPDESK_IMPORT_INLINE_MAX_ROWS", "2")
    get_settings.cache_clear()
    at = uploaded(app_env)
    at.button(key="imp_run").click().run()
    assert not at.exception, at.exception
    with read_session(app_env) as s:
        job = s.scalars(select(ImportJob)).one()
        assert (job.state, job.in_worker) == ("queued", True)
    assert any("queued: 0 of 3 rows" in p.proto.text for p in at.get("progress"))
    assert tickets(app_env) == 0
    assert run_imports(app_env) == 1
    at.run()
    assert not at.exception, at.exception
    assert metrics(at)["Created"] == "2" and tickets(app_env) == 2


def test_an_event_log_from_the_app_equals_pandas_and_imports_once(app_env: Engine, staff_app: Staff, tmp_path):
    """The generated BPI-shaped log (tests/data/test_import_eventlog.py) through the Import tab with the default
    mapping: per-case reopen counts, statuses and resolution times equal the pandas computation on the raw rows;
    the same file again changes nothing."""
    from lib.transfer.importer_eventlog import DEFAULT_MAPPING_TOML
    from tests.data.test_import_eventlog import generate, per_case, reference

    path = generate(tmp_path / "bpi_like.csv", cases=60, seed=3)
    want = per_case(reference(path))
    at = page_test("admin.py", "lead")
    at.run()
    at.file_uploader(key="imp_file").upload("bpi_like.csv", path.read_bytes(), "text/csv").run()
    at.selectbox(key="imp_layout").set_value("eventlog").run()
    assert not at.exception, at.exception
    assert at.text_area(key="imp_mapping_text").value == DEFAULT_MAPPING_TOML
    mapping = dict(zip(frame(at, "Becomes")["File column"], frame(at, "Becomes")["Becomes"], strict=True))
    assert mapping["SR Number"] == "the ticket (one per case id)" and "placeholder" in mapping["Involved ST"]
    at.button(key="imp_dry").click().run()
    assert metrics(at) == {"Would be created": "60", "Would be updated": "0", "Unchanged": "0", "Refused": "0"}
    assert tickets(app_env) == 0
    at.button(key="imp_run").click().run()
    assert not at.exception, at.exception
    assert metrics(at) == {"Created": "60", "Updated": "0", "Unchanged": "0", "Refused": "0"}
    with read_session(app_env) as s:
        got = {t.external_ref: t for t in s.scalars(select(Ticket))}
        assert {c: got[c].reopen_count for c in want.index} == want["reopens"].to_dict()
        assert {c: got[c].status for c in want.index} == want["status"].to_dict()
        assert {c: got[c].resolved_at for c in want.index} == {
            c: (None if pd.isna(r) else r.to_pydatetime()) for c, r in want["resolved"].items()}
    at.button(key="imp_run").click().run()
    assert metrics(at) == {"Created": "0", "Updated": "0", "Unchanged": "60", "Refused": "0"}
    assert tickets(app_env) == 60
