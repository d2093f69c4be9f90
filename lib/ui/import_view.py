"""The Admin page's Import tab: upload a CSV, see what it becomes, dry-run it, import it, follow the import.

The rules are in lib/transfer (import_preview, import_jobs, importer); this module lays out widgets and calls
them. Session state holds UI state only: the job this browser follows and the preview of the file on screen.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from lib.errors import ValidationError
from lib.models import User
from lib.transfer import import_jobs
from lib.transfer.import_jobs import JobState, JobView
from lib.transfer.import_preview import Preview, preview
from lib.transfer.importer_eventlog import DEFAULT_MAPPING_TOML
from lib.ui.core import escape_md, fmt_time, get_engine, reading, write

LAYOUT_LABELS = {
    "auto": "Tell from the header",
    "generic": "Generic (one row per ticket)",
    "servicenow": "ServiceNow incident log",
    "eventlog": "Event log (one row per change, with a mapping)",
}
#: How often the page looks at a job the worker runs.
REFRESH_SECONDS = 2
JOB_KEY = "imp_job"
PREVIEW_KEY = "imp_preview"
STATE_ICONS = {JobState.QUEUED: "⏳", JobState.RUNNING: "🏃", JobState.DONE: "✅", JobState.FAILED: "🛑"}


def eventlog_default_mapping() -> str:
    """The event-log layout's default mapping (the text the mapping box starts with)."""
    return DEFAULT_MAPPING_TOML


def render(lead: User) -> None:
    st.markdown("Import tickets from a CSV file: the generic layout, a ServiceNow incident log or an event log "
                "(docs/cli.md has the columns). Tickets are found again by their external reference, so importing "
                "the same file twice changes nothing. A dry run says what an import would do and writes nothing.")
    upload = st.file_uploader("CSV file", type=["csv"], key="imp_file")
    layout = st.selectbox("Layout", list(LAYOUT_LABELS), format_func=LAYOUT_LABELS.__getitem__, key="imp_layout")
    mapping = _mapping_input() if layout == "eventlog" else None
    if upload is not None:
        _file_section(lead, upload.name, upload.getvalue(), layout, mapping)
    followed = st.session_state.get(JOB_KEY)
    if followed is not None:
        job_panel(int(followed))
    _recent()


def _mapping_input() -> str | None:
    default = eventlog_default_mapping()
    uploaded = st.file_uploader("Mapping file (TOML, optional)", type=["toml"], key="imp_mapping_file")
    text = st.text_area("Mapping (TOML)", value=default, height=260, key="imp_mapping_text",
                        help="Which column holds what, and how the log's states map to ours; an uploaded mapping "
                             "file replaces this text")
    if uploaded is not None:
        try:
            return uploaded.getvalue().decode("utf-8")
        except UnicodeDecodeError:
            st.error("The mapping file is not UTF-8 text.", icon="✋")
            return None
    return text


def _file_section(lead: User, filename: str, data: bytes, layout: str, mapping: str | None) -> None:
    key = (hashlib.sha256(data).hexdigest(), layout, mapping)
    cached = st.session_state.get(PREVIEW_KEY)
    if cached and cached[0] == key:
        shown: Preview | str = cached[1]
    else:
        shown = _preview(filename, data, layout, mapping)
        st.session_state[PREVIEW_KEY] = (key, shown)
    if isinstance(shown, str):
        st.error(f"This file cannot be imported: {escape_md(shown)}", icon="✋")
        return
    show_preview(shown)
    c1, c2, _ = st.columns([1, 1, 3])
    dry = c1.button("🧪 Dry run", key="imp_dry", help="Count what would be created, updated, unchanged and refused; "
                                                      "nothing is written")
    run = c2.button("📥 Import", type="primary", key="imp_run")
    if dry or run:
        _start(lead, filename, data, shown.layout, mapping, dry_run=dry)


def _preview(filename: str, data: bytes, layout: str, mapping: str | None) -> Preview | str:
    """The preview, or what is wrong with the file (as the lead should read it)."""
    try:
        with import_jobs.upload_file(data, filename) as path:
            return preview(get_engine(), path, layout=layout, mapping_toml=mapping)
    except ValidationError as exc:
        return "; ".join(exc.fields.values()) if exc.fields else str(exc)


def show_preview(p: Preview) -> None:
    st.markdown(f"**{LAYOUT_LABELS.get(p.layout, p.layout)}** — {p.total_rows:,} data rows.")
    st.markdown("#### What each column becomes")
    st.dataframe(pd.DataFrame([{"File column": c, "Becomes": b} for c, b in p.mapping]), hide_index=True,
                 width="stretch", key="imp_mapping_table")
    st.markdown(f"#### The first {len(p.rows)} tickets as they will be read")
    rows = []
    for r in p.rows:
        values = {k: fmt_time(v) if isinstance(v, datetime) else v for k, v in r.values.items()}
        rows.append({"File rows": r.where, "Outcome": r.outcome, "Problems": "; ".join(r.problems), **values})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="imp_rows_table")
    refused = sum(1 for r in p.rows if r.problems)
    if refused:
        st.warning(f"{refused} of these would be refused; the table says why. The others import all the same.",
                   icon="📋")


def _start(lead: User, filename: str, data: bytes, layout: str, mapping: str | None, *, dry_run: bool) -> None:
    try:  # the file is read before the write transaction: nobody waits on it
        checked = import_jobs.check_upload(data, filename, layout, mapping)
    except ValidationError as exc:
        st.error("This file cannot be imported: " + escape_md("; ".join(exc.fields.values()) or str(exc)), icon="✋")
        return
    started = write(lambda s: import_jobs.start_job(s, actor=lead.id, filename=filename, data=data, layout=layout,
                                                    mapping_toml=mapping, dry_run=dry_run, checked=checked))
    if started is None:
        return  # write() showed why
    job, claim = started
    st.session_state[JOB_KEY] = job.id
    st.session_state.pop(PREVIEW_KEY, None)  # the outcomes change once it has run
    if claim is None:
        st.toast("Big file: the background worker runs it; this page shows its progress.", icon="⏳")
        return
    bar = st.progress(0.0, text="Dry run…" if dry_run else "Importing…")

    def progress(done: int, total: int | None) -> None:
        bar.progress(min(1.0, done / total) if total else 0.0, text=f"{done:,} of {total or 0:,} rows")

    try:
        import_jobs.run_job(get_engine(), claim, progress=progress)
    except ScriptControlException:  # the lead clicked on while it ran: the worker carries on from the checkpoint
        import_jobs.release(get_engine(), claim)
        raise
    bar.empty()


def job_panel(job_id: int) -> None:
    """The followed job: live while it runs (a fragment that reruns itself), then its result."""
    try:
        view = import_jobs.get_job(get_engine(), job_id)
    except Exception:  # noqa: BLE001 - a job removed since: stop following it
        st.session_state.pop(JOB_KEY, None)
        return
    st.markdown(f"#### {'Dry run' if view.dry_run else 'Import'} {view.id}: {escape_md(view.filename)}")
    if view.active:
        _live(job_id)
    else:
        _result(view)


@st.fragment(run_every=REFRESH_SECONDS)
def _live(job_id: int) -> None:
    view = import_jobs.get_job(get_engine(), job_id)
    if not view.active:
        st.rerun(scope="app")
    st.progress(view.fraction, text=f"{STATE_ICONS[JobState(view.state)]} {view.state}: {view.rows_done:,} of "
                                    f"{view.rows_total:,} rows" + (" (background worker)" if view.in_worker else ""))
    if view.state == JobState.QUEUED:
        st.caption("Waiting for the background worker (it looks for work every cycle).")
    elif view.error:
        st.caption(f"Last try failed and will be retried: {escape_md(view.error or '')}")


def _result(view: JobView) -> None:
    if view.state == JobState.FAILED:
        st.error(f"The import failed: {escape_md(view.error or '')}", icon="🛑")
        return
    if view.dry_run:
        st.info("Dry run: nothing was written. These are the counts an import of this file would report.",
                icon="🧪")
    c = st.columns(4)
    verb = "Would be created" if view.dry_run else "Created"
    c[0].metric(verb, f"{view.created:,}")
    c[1].metric("Would be updated" if view.dry_run else "Updated", f"{view.updated:,}")
    c[2].metric("Unchanged", f"{view.unchanged:,}")
    c[3].metric("Refused", f"{view.refused:,}")
    st.caption(escape_md(view.summary()))
    if view.refused:
        with reading() as s:
            reasons = import_jobs.refusals(s, view.id)
        st.dataframe(pd.DataFrame([{"Refused": r} for r in reasons[:200]]), hide_index=True, width="stretch",
                     key=f"imp_refused_{view.id}")
        st.download_button("⬇️ Refused rows (CSV)", data=import_jobs.refusals_csv(reasons),
                           file_name=f"import-{view.id}-refused.csv", mime="text/csv", key=f"imp_refused_csv_{view.id}")


def _recent() -> None:
    with reading() as s:
        jobs = import_jobs.list_jobs(s, limit=20)
    if not jobs:
        return
    st.markdown("#### Recent imports")
    st.dataframe(pd.DataFrame([{
        "#": j.id, "Started": fmt_time(j.created_at), "By": j.started_by or "—", "File": j.filename,
        "Layout": j.layout, "Dry run": j.dry_run, "State": f"{STATE_ICONS[JobState(j.state)]} {j.state}",
        "Rows": f"{j.rows_done:,} / {j.rows_total:,}", "Created": j.created, "Updated": j.updated,
        "Unchanged": j.unchanged, "Refused": j.refused} for j in jobs]), hide_index=True, width="stretch",
        key="imp_recent")
    pick = st.selectbox("Show an import", [j.id for j in jobs], index=None, key="imp_pick",
                        format_func=lambda i: next(f"{j.id}: {j.filename} ({j.state})" for j in jobs if j.id == i))
    if pick is not None and pick != st.session_state.get(JOB_KEY):
        st.session_state[JOB_KEY] = pick
        st.rerun()
