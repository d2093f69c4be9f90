"""Admin and cron commands: ``python -m lib.cli COMMAND ...`` (``--help`` on each).

The database comes from HELPDESK_DATABASE_URL (or .streamlit/secrets.toml); default data/helpdesk.sqlite3.
Exit codes: 0 ok, 1 the command failed (the message names the row or argument at fault), 2 bad usage.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lib.db import make_engine, read_session, transaction, upgrade_schema
from lib.errors import HelpdeskError, NotFound, ValidationError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from lib.models import User


def _engine(args: argparse.Namespace):
    engine = make_engine(args.database_url) if getattr(args, "database_url", None) else make_engine()
    upgrade_schema(engine)
    return engine


class Progress:
    """A one-line progress display on stderr for long work (seeding, importing, backup)."""

    def __init__(self, label: str, *, quiet: bool = False) -> None:
        self.label, self.quiet, self.start, self.last = label, quiet, time.monotonic(), 0.0

    def __call__(self, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if self.quiet or (now - self.last < 0.5 and (total is None or done < total)):
            return
        self.last = now
        pct = f" {100 * done / total:5.1f}%" if total else ""
        sys.stderr.write(f"\r{self.label}: {done:,}{'/' + format(total, ',') if total else ''}{pct} "
                         f"({now - self.start:.0f} s)")
        sys.stderr.flush()

    def stage(self, message: str) -> None:
        """A new stage of the work whose length the counter cannot show (e.g. building indexes)."""
        if not self.quiet:
            sys.stderr.write(f"\n{message} ({time.monotonic() - self.start:.0f} s)")
            sys.stderr.flush()

    def done(self) -> float:
        if not self.quiet:
            sys.stderr.write("\n")
        return time.monotonic() - self.start


def cmd_init_db(args: argparse.Namespace) -> int:
    engine = make_engine(args.database_url) if args.database_url else make_engine()
    changed = upgrade_schema(engine)
    print(f"database ready at {engine.url.render_as_string(hide_password=True)}"
          f" ({'schema created or upgraded' if changed else 'already up to date'})")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise ValidationError({"password": "no terminal to prompt on: pass --password-stdin and pipe it in"})
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise ValidationError({"password": "the two entries differ"})
    return first


def cmd_create_user(args: argparse.Namespace) -> int:
    from lib import users
    from lib.workflow import Role

    engine = _engine(args)
    password = _read_password(args)
    with transaction(engine) as s:
        first = users.count_users(s) == 0
        if not first and not args.as_lead:
            raise ValidationError({"--as": "accounts exist already: name the lead creating this one with --as USERNAME"})
        actor = None
        if not first:
            lead = users.get_by_username(s, args.as_lead)
            if lead is None:
                raise ValidationError({"--as": f"no user {args.as_lead!r}"})
            actor = lead.id
        user = users.create_user(s, actor=actor, username=args.username, name=args.name or args.username,
                                 email=args.email, password=password, role=Role.parse(args.role),
                                 capacity=args.capacity, first_run=first)
        print(f"created {Role(user.role).label.lower()} {user.username!r} (id {user.id})")
    return 0


# --- accounts ------------------------------------------------------------------------------------------


def _find_user(session: Session, username: str) -> User:
    from lib import users

    user = users.get_by_username(session, username)
    if user is None:
        raise NotFound(f"no user {username.strip().lower()!r} (python -m lib.cli list-users shows the accounts)")
    return user


def _active_leads(session: Session) -> list[User]:
    from sqlalchemy import select

    from lib.models import User
    from lib.workflow import Role

    return list(session.scalars(select(User).where(User.role >= int(Role.LEAD), User.active.is_(True))
                                .order_by(User.id)))


def _other_active_leads(session: Session, user_id: int) -> int:
    return sum(1 for u in _active_leads(session) if u.id != user_id)


def _acting_lead(session: Session, as_lead: str | None, *, besides: int | None = None) -> User:
    """The lead in whose name an account change is made and audited: ``--as USERNAME``, else the active lead
    with the lowest id (other than ``besides``, the account being changed, when there is another)."""
    from lib.workflow import Role

    if as_lead:
        lead = _find_user(session, as_lead)
        if not lead.active or Role(lead.role) < Role.LEAD:
            raise ValidationError({"--as": f"{lead.username!r} is not an active lead"})
        return lead
    leads = _active_leads(session)
    others = [u for u in leads if u.id != besides]
    if not (others or leads):
        raise ValidationError({"--as": "there is no active lead to act as; create one with create-user --role lead"})
    return (others or leads)[0]


def _utc(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else ""


def cmd_list_users(args: argparse.Namespace) -> int:
    import csv

    from lib import clock, queries
    from lib.workflow import Role

    now = clock.now()
    header = ["username", "name", "role", "active", "locked_until", "last_login"]
    with read_session(_engine(args)) as s:
        rows = [[u.username, u.name, Role(u.role).key, "yes" if u.active else "no",
                 _utc(u.locked_until) if u.locked_until is not None and u.locked_until > now else "",
                 _utc(u.last_login_at)]
                for u in sorted(queries.list_users(s), key=lambda u: u.username)]
    if args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return 0
    titles = [h.replace("_", " ") for h in header]
    widths = [max(len(str(r[i])) for r in [titles, *rows]) for i in range(len(header))]
    for line in [titles, ["-" * w for w in widths], *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    print(f"{len(rows)} account(s); times in UTC")
    return 0


def cmd_deactivate_user(args: argparse.Namespace) -> int:
    from lib import users
    from lib.workflow import Role

    with transaction(_engine(args)) as s:
        user = _find_user(s, args.username)
        if not user.active:
            print(f"{user.username!r} is already inactive; nothing changed")
            return 0
        if Role(user.role) >= Role.LEAD and not _other_active_leads(s, user.id):
            raise ValidationError({"username": f"{user.username!r} is the last active lead: the desk needs one. "
                                               "Make another account a lead first (create-user --role lead)"})
        lead = _acting_lead(s, args.as_lead, besides=user.id)
        to = _find_user(s, args.to).id if args.to else None
        users.deactivate(s, actor=lead.id, user_id=user.id, open_tickets=args.open_tickets, to=to)
        where = {"queue": "; their open tickets went back to the queue",
                 "reassign": f"; their open tickets went to {args.to!r}"}.get(args.open_tickets or "", "")
        print(f"deactivated {user.username!r} (as lead {lead.username!r}); they can no longer log in{where}")
    return 0


def _read_new_password(args: argparse.Namespace) -> str:
    """The new password: from a prompt (typed twice) on a terminal, else the first line of stdin."""
    from lib import users

    if args.password_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise ValidationError({"password": "nothing on stdin: pipe the new password in as one line"})
        password = line.rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if password != getpass.getpass("Repeat new password: "):
            raise ValidationError({"password": "the two entries differ"})
    return users.validate_password(password)


def cmd_reset_password(args: argparse.Namespace) -> int:
    from lib import users

    engine = _engine(args)
    with read_session(engine) as s:  # the account is checked before asking for a password
        _find_user(s, args.username)
    password = _read_new_password(args)
    with transaction(engine) as s:
        user = _find_user(s, args.username)
        lead = _acting_lead(s, args.as_lead, besides=user.id)
        users.reset_password(s, actor=lead.id, user_id=user.id, new=password)
        note = "" if user.active else "; the account is inactive, so it still cannot log in"
        print(f"password of {user.username!r} reset and any lockout cleared (as lead {lead.username!r}){note}")
    return 0


def cmd_unlock_user(args: argparse.Namespace) -> int:
    from lib import clock, users
    from lib.models import User
    from lib.ticket_core import lock_row

    with transaction(_engine(args)) as s:
        user = _find_user(s, args.username)
        user = lock_row(s, User, user.id, missing=f"user {user.username!r} was just removed")
        lead = _acting_lead(s, args.as_lead) if args.as_lead else None
        now = clock.now()
        if user.locked_until is None and not user.failed_logins:
            print(f"{user.username!r} is not locked and has no failed logins; nothing changed")
            return 0
        locked = user.locked_until is not None and user.locked_until > now
        cleared = f"failed logins {user.failed_logins} -> 0" + (
            f"; lock until {_utc(user.locked_until)} lifted" if locked else "")
        users.unlock(s, actor=lead.id if lead is not None else None, user_id=user.id, now=now)
        print(f"unlocked {user.username!r} ({cleared})")
    return 0


def cmd_revoke_sessions(args: argparse.Namespace) -> int:
    from lib import sessions
    from lib.audit_log import audit

    with transaction(_engine(args)) as s:
        user = _find_user(s, args.username)
        ended = sessions.revoke_all(s, user_id=user.id, reason="revoked from the CLI")
        audit(s, actor="cli", action="sessions_revoked", target=user.username, detail=f"{ended} ended")
        print(f"ended {ended} session(s) of {user.username!r}: every browser of theirs must sign in again")
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from lib.seed.demo import seed_demo

    engine = _engine(args)
    progress = Progress("seeding tickets", quiet=args.quiet)
    now = None
    if args.now:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            raise ValidationError({"--now": f"{args.now!r} is not an ISO-8601 time such as 2026-12-01T10:00:00Z"}) from None
        if now.tzinfo is None:
            raise ValidationError({"--now": f"{args.now!r} has no time zone: add Z or an offset such as +01:00"})
    summary = seed_demo(engine, tickets=args.tickets, years=args.years, seed=args.seed, progress=progress,
                        demo_password=args.demo_password, stage=progress.stage, now=now)
    elapsed = progress.done()
    print(f"{summary} in {elapsed:.1f} s")
    return 0


def cmd_import_csv(args: argparse.Namespace) -> int:
    from lib.transfer.importer import import_csv

    engine = _engine(args)
    progress = Progress(f"importing {Path(args.path).name}", quiet=args.quiet)
    mapping = None
    if args.layout == "eventlog":
        from lib.transfer.importer_eventlog import apply_overrides

        try:
            base = Path(args.mapping).read_text(encoding="utf-8") if args.mapping else None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationError({"--mapping": f"cannot read {args.mapping}: {exc}"}) from None
        mapping = apply_overrides(base, args.column, args.status)
    elif args.mapping or args.column or args.status:
        raise ValidationError({"--mapping": "--mapping, --column and --status are read by --layout eventlog only"})
    report = import_csv(engine, Path(args.path), layout=args.layout, progress=progress, mapping_toml=mapping,
                        dry_run=args.dry_run)
    progress.done()
    for line in report.refused[: args.show_refused]:
        print(f"refused: {line}", file=sys.stderr)
    if len(report.refused) > args.show_refused:
        print(f"... and {len(report.refused) - args.show_refused} more refused rows", file=sys.stderr)
    print(report.summary())
    return 1 if report.refused else 0


def cmd_show_mapping(args: argparse.Namespace) -> int:
    from lib.transfer.importer_eventlog import DEFAULT_MAPPING_TOML

    print(DEFAULT_MAPPING_TOML, end="")
    return 0


def cmd_export_csv(args: argparse.Namespace) -> int:
    from lib.transfer.exporter import export_tickets_csv

    progress = Progress("exporting tickets", quiet=args.quiet)
    n = export_tickets_csv(_engine(args), Path(args.path), progress=progress)
    progress.done()
    print(f"exported {n:,} tickets to {args.path}")
    return 0


def cmd_export_events(args: argparse.Namespace) -> int:
    from lib.transfer.exporter import export_events_csv

    progress = Progress("exporting events", quiet=args.quiet)
    n = export_events_csv(_engine(args), Path(args.path), progress=progress)
    progress.done()
    print(f"exported {n:,} events to {args.path}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from lib.transfer.backup import backup

    engine = _engine(args)
    progress = Progress("backing up", quiet=args.quiet)
    size = backup(engine, Path(args.path), progress=progress)
    progress.done()
    print(f"backup written to {args.path} ({size:,} bytes)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from lib.transfer.backup import restore

    engine = make_engine(args.database_url) if args.database_url else make_engine()
    restore(engine, Path(args.path), force=args.force)
    print(f"restored {args.path}")
    return 0


def cmd_sla_check(args: argparse.Namespace) -> int:
    from lib.sla import record_breaches

    with transaction(_engine(args)) as s:
        n = record_breaches(s)
    print(f"recorded {n} new SLA breach(es)")
    return 0


def cmd_ingest_email(args: argparse.Namespace) -> int:
    from lib.mail.inbound import ingest_files

    engine = _engine(args)
    progress = Progress("ingesting mail", quiet=args.quiet or args.sources == ["-"])
    summary = ingest_files(engine, args.sources, progress=progress)
    progress.done()
    for source, error in summary.errors:
        print(f"not ingested: {source}: {error}", file=sys.stderr)
    if args.verbose:
        for source, result in summary.results:
            print(f"{source}: {result}")
    print(summary)
    if summary.errors:
        # EX_TEMPFAIL: an MTA piping one message in keeps it and tries again later.
        return 75 if args.sources == ["-"] else 1
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import logging

    from lib.worker import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    report = run(_engine(args), once=args.once, interval=args.interval)
    if args.once and report is not None:
        print(report)
        return 1 if report.errors else 0
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from lib.db import read_session
    from lib.metrics.weekly_report import last_full_week, write_report

    # Read-only and run from cron: migrate only when the metrics tables are missing (loading the migration
    # machinery on every run costs a third of a second).
    engine = make_engine(args.database_url) if args.database_url else make_engine()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1 FROM metric_days WHERE 1 = 0"))
    except DBAPIError:
        upgrade_schema(engine)
    week = args.week or last_full_week()
    with read_session(engine) as s:
        out = write_report(s, week, args.format, Path(args.out))
    print(f"report for {week} written to {out} ({out.stat().st_size:,} bytes)")
    return 0


def cmd_rebuild_rollups(args: argparse.Namespace) -> int:
    from lib.metrics.metrics_store import check, check_days, rebuild

    engine = _engine(args)
    if args.check:
        with transaction(engine) as s:
            wrong, days = check(s), check_days(s)
        if wrong:
            print(f"ticket_metrics differs from tickets for ticket ids {', '.join(map(str, wrong))}")
        if days:
            print(f"metric_days differs from ticket_metrics on (day, priority, category) {days}")
        if not wrong and not days:
            print("ticket_metrics and metric_days are in step with tickets")
        return 1 if wrong or days else 0
    started = time.monotonic()
    with transaction(engine) as s:
        n = rebuild(s)
    print(f"rebuilt ticket_metrics and metric_days: {n:,} tickets in {time.monotonic() - started:.1f} s")
    return 0


def _ticket_number(value: str) -> int:
    """``--ticket``: a ticket number, or its reference (``HD-000123``)."""
    digits = value.strip().rsplit("-", 1)[-1]
    if not digits.isdigit() or not 0 < int(digits) < 2**31:
        raise argparse.ArgumentTypeError(f"{value!r} is not a ticket number or reference like HD-000123")
    return int(digits)


def cmd_verify_audit(args: argparse.Namespace) -> int:
    from lib import audit_chain
    from lib.models import ticket_ref

    engine = _engine(args)
    if args.seal:
        progress = Progress("sealing tickets", quiet=args.quiet)
        sealed = audit_chain.seal(engine, begin=transaction, progress=progress)
        progress.done()
        print(f"sealed {sealed:,} event(s) written before chain hashes")
    progress = Progress("verifying ticket chains", quiet=args.quiet)
    report = audit_chain.verify(engine, ticket_id=args.ticket, progress=progress)
    elapsed = progress.done()
    if args.ticket is not None and not report.events:
        raise NotFound(f"{ticket_ref(args.ticket)} has no events (or does not exist)")
    for name in report.missing_triggers:
        print(f"append-only trigger {name} is missing or disabled: run init-db, or see lib/audit_chain.py")
    for b in report.broken:
        print(f"{ticket_ref(b.ticket_id)}: event {b.event_id}: {b.problem}")
    checked = f"{report.tickets:,} ticket(s), {report.events:,} event(s) checked in {elapsed:.1f} s"
    if not report.intact:
        print(f"audit trail NOT intact: {len(report.broken):,} broken chain(s), "
              f"{len(report.missing_triggers)} missing trigger(s); {checked}")
        return 1
    unsealed = (f"; {report.unsealed:,} event(s) written before chain hashes are not covered yet "
                "(verify-audit --seal)") if report.unsealed else ""
    print(f"audit trail intact: {checked}{unsealed}")
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "init-db": (cmd_init_db, "create or upgrade the database schema"),
    "create-user": (cmd_create_user, "create a staff account (password from a prompt or stdin, never argv)"),
    "list-users": (cmd_list_users, "list the staff accounts: role, active, lockout, last login"),
    "deactivate-user": (cmd_deactivate_user, "deactivate a staff account (never the last active lead)"),
    "reset-password": (cmd_reset_password, "set a new password for an account and clear its lockout (password "
                                           "from a prompt or stdin, never argv)"),
    "unlock-user": (cmd_unlock_user, "clear an account's failed logins and lockout"),
    "revoke-sessions": (cmd_revoke_sessions, "sign an account out of every browser (its sessions end now)"),
    "seed-demo": (cmd_seed_demo, "fill the database with realistic demo data"),
    "import-csv": (cmd_import_csv, "import tickets from CSV (generic layout, the ServiceNow incident log, an event log)"),
    "show-mapping": (cmd_show_mapping, "print the default event-log mapping (TOML) to copy and edit for "
                                       "import-csv --layout eventlog --mapping FILE"),
    "export-csv": (cmd_export_csv, "one row per ticket, ISO-8601 UTC times"),
    "export-events": (cmd_export_events, "one row per timeline event"),
    "backup": (cmd_backup, "back up the database (SQLite online backup; PostgreSQL via pg_dump)"),
    "restore": (cmd_restore, "restore a backup made by 'backup'"),
    "sla-check": (cmd_sla_check, "record each new SLA breach once as an event (for cron)"),
    "ingest-email": (cmd_ingest_email, "turn mail into tickets and comments: files, a Maildir, or - for one message "
                                       "on stdin (MTA pipe)"),
    "worker": (cmd_worker, "run the background worker: IMAP poll, outbox, SLA breaches, unacknowledged tickets, "
                                 "confirmation and follow-up reminders"),
    "report": (cmd_report, "the weekly review of one ISO week as json, csv (headline table), xlsx or html"),
    "verify-audit": (cmd_verify_audit, "check every ticket's event hash chain and the append-only triggers; exit 1 "
                                       "naming the first broken link of each ticket"),
    "rebuild-rollups": (cmd_rebuild_rollups, "refill the metrics tables (ticket_metrics, metric_days) from tickets, "
                                             "or --check them"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="overrides HELPDESK_DATABASE_URL")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parsers = {name: sub.add_parser(name, help=help_, description=help_) for name, (_, help_) in COMMANDS.items()}

    p = parsers["create-user"]
    p.add_argument("username")
    p.add_argument("--name", help="full name (default: the username)")
    p.add_argument("--email")
    p.add_argument("--role", default="technician", help="technician, senior or lead (the first account must be a lead)")
    p.add_argument("--capacity", type=int, default=10, help="open tickets this person can carry (default 10)")
    p.add_argument("--as", dest="as_lead", help="username of the lead creating the account (not needed for the first)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")

    parsers["list-users"].add_argument("--format", choices=["table", "csv"], default="table")
    for name in ("deactivate-user", "reset-password", "unlock-user"):
        p = parsers[name]
        p.add_argument("username")
        p.add_argument("--as", dest="as_lead", metavar="LEAD",
                       help="username of the lead in whose name the change is audited" + (
                           "" if name == "unlock-user" else " (default: the first active lead)"))
    parsers["revoke-sessions"].add_argument("username")
    parsers["deactivate-user"].add_argument("--open-tickets", choices=["queue", "reassign"],
                                            help="what happens to the open tickets they hold: back to the queue, or "
                                                 "reassigned to --to (needed when they hold any)")
    parsers["deactivate-user"].add_argument("--to", metavar="USERNAME", help="who takes them with --open-tickets "
                                                                             "reassign")
    parsers["reset-password"].add_argument("--password-stdin", action="store_true",
                                           help="read the password from the first line of stdin even on a terminal")

    p = parsers["seed-demo"]
    p.add_argument("--tickets", type=int, default=5000)
    p.add_argument("--years", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--now", metavar="TIME", help="the moment the data ends at (ISO-8601 with a zone, e.g. "
                   "2026-12-01T10:00:00Z; default: now): the same --seed and --now give the same data on any engine")
    p.add_argument("--demo-password", default=None,
                   help="password for the demo staff accounts (default: none are created with a known password; "
                        "they get a random one printed once)")
    p.add_argument("--quiet", action="store_true")

    p = parsers["import-csv"]
    p.add_argument("path")
    p.add_argument("--layout", choices=["auto", "generic", "servicenow", "eventlog"], default="auto",
                   help="eventlog: one row per change of a case, read through a mapping (docs/cli.md)")
    p.add_argument("--mapping", metavar="FILE", help="eventlog: the TOML mapping (default: the BPI 2013 layout; "
                   "print it with show-mapping)")
    p.add_argument("--column", action="append", default=[], metavar="ROLE=COLUMN",
                   help="eventlog: which column holds a role (case, time, status, owner...), over the mapping")
    p.add_argument("--status", action="append", default=[], metavar="SOURCE=OURS",
                   help='eventlog: map a source state to ours, e.g. "Completed/Resolved=resolved"')
    p.add_argument("--show-refused", type=int, default=20, help="how many refused rows to list (default 20)")
    p.add_argument("--dry-run", action="store_true",
                   help="report what would be created, updated, unchanged and refused; write nothing")
    p.add_argument("--quiet", action="store_true")

    for name in ("export-csv", "export-events"):
        parsers[name].add_argument("path")
        parsers[name].add_argument("--quiet", action="store_true")
    parsers["backup"].add_argument("path")
    parsers["backup"].add_argument("--quiet", action="store_true")
    parsers["restore"].add_argument("path")
    parsers["restore"].add_argument("--force", action="store_true", help="replace a database that has tickets")

    p = parsers["ingest-email"]
    p.add_argument("sources", nargs="+", metavar="FILE|MAILDIR|-",
                   help="message files, folders or Maildirs (new/ and cur/), or - for one message on stdin")
    p.add_argument("--verbose", action="store_true", help="print what became of each message")
    p.add_argument("--quiet", action="store_true")

    p = parsers["worker"]
    p.add_argument("--once", action="store_true", help="run one cycle and exit (for cron)")
    p.add_argument("--interval", type=float, default=None,
                   help="seconds between cycles (default: the worker_interval setting, 60)")

    p = parsers["report"]
    p.add_argument("--week", help="ISO week such as 2026-W47 (default: the last full week, in the desk's time zone)")
    p.add_argument("--format", choices=["json", "csv", "xlsx", "html"], default="json")
    p.add_argument("--out", required=True, help="the file to write")
    parsers["rebuild-rollups"].add_argument("--check", action="store_true",
                                            help="only compare the metrics tables with tickets; exit 1 if they differ")
    p = parsers["verify-audit"]
    p.add_argument("--ticket", type=_ticket_number, metavar="N", help="only this ticket (a number or HD-000123)")
    p.add_argument("--seal", action="store_true",
                   help="first hash the events written before chain hashes existed (once, after upgrading)")
    p.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = COMMANDS[args.command][0]
    try:
        return handler(args)
    except ValidationError as exc:
        detail = "; ".join(f"{k}: {v}" for k, v in exc.fields.items()) if exc.fields else str(exc)
        print(f"error: {detail}", file=sys.stderr)
        return 1
    except (HelpdeskError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
