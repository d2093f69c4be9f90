"""The Admin page's Import tab in a real browser: upload a CSV, read the preview, dry-run it, download the refused
rows, import it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import login, seed_accounts, shot, wait_idle

CSV = ("external_id,created_at,summary,category,priority,status,legacy_code\n"
       "B-1,2024-03-01T09:15:00Z,Printer jams,Printing,high,,X1\n"
       "B-2,2024-03-02 10:00,VPN drops,networking,2,in progress,X2\n"
       "B-3,2024-03-05,Laptop fan loud,Hardware,urgent,,X3\n")


@pytest.fixture(scope="module")
def seeded(app_server):  # type: ignore[no-untyped-def]
    seed_accounts(app_server.db).dispose()
    return app_server


def test_upload_preview_dry_run_and_import(browser, seeded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from lib.db import make_engine, read_session
    from lib.models import Ticket

    path = tmp_path / "tickets.csv"
    path.write_text(CSV, encoding="utf-8")
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = ctx.new_page()
    login(page, seeded.url, "lena", path="/admin")
    page.get_by_role("tab", name="📥 Import").click()
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(path))
    page.get_by_text("The first 3 tickets as they will be read").wait_for()
    wait_idle(page)
    grids = page.get_by_test_id("stDataFrame")
    grids.locator('td[role="gridcell"]', has_text="ignored").first.wait_for(state="attached")
    grids.locator('td[role="gridcell"]', has_text="would be created").first.wait_for(state="attached")
    grids.locator('td[role="gridcell"]', has_text="In progress").first.wait_for(state="attached")
    shot(page, "admin_import_preview")

    page.get_by_role("button", name="🧪 Dry run").click()
    page.get_by_text("Dry run: nothing was written").wait_for()
    wait_idle(page)
    with page.expect_download() as got:
        page.get_by_role("button", name="⬇️ Refused rows (CSV)").click()
    refused = Path(got.value.path()).read_text(encoding="utf-8-sig")
    assert refused.splitlines()[0] == "row,reason" and "row 4" in refused and "urgent" in refused
    engine = make_engine(f"sqlite:///{seeded.db}")
    try:
        with read_session(engine) as s:
            assert s.scalar(select(func.count()).select_from(Ticket)) == 0

        page.get_by_role("button", name="📥 Import").click()
        page.get_by_text("generic import of 3 rows: 2 tickets created").wait_for()
        wait_idle(page)
        shot(page, "admin_import_done")
        with read_session(engine) as s:
            assert s.scalar(select(func.count()).select_from(Ticket)) == 2
    finally:
        engine.dispose()
