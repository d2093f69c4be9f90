"""Knowledge base: articles (KB-12) with kept versions, drafted from resolved tickets, published by a senior.

Write functions follow the ticket services' rules: the caller opens the transaction, the actor's role is
read from the database, input is validated here, and a change that lands on a ticket (an article linked,
an article drafted from it) appends an event to its timeline. An article edit passes the version the
editor loaded and is refused when someone saved in between (no lost edits).

Who does what: any technician writes and edits drafts and links articles to tickets; a senior technician
or a lead publishes, unpublishes and edits published articles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lib.errors import NotFound, StaleTicket, ValidationError
from lib.models import Category, KbArticle, KbArticleTicket, KbArticleVersion, Ticket, User
from lib.ticket_core import (
    ActorArg,
    add_event,
    clean_id,
    clean_line,
    clean_text,
    load_actor,
    lock_row,
    lock_ticket,
    now_utc,
    ref,
    require,
    require_permission,
)
from lib.workflow import Action, EventKind, KbStatus, Permission

KB_PREFIX = "KB"
MAX_TAGS = 20
MAX_TAG_LEN = 40
MAX_ARTICLE_TEXT = 50_000
_KB_REF = re.compile(r"^\s*(?:kb[-\s#]*)?0*(\d{1,9})\s*$", re.IGNORECASE)


def kb_ref(article_id: int) -> str:
    return f"{KB_PREFIX}-{article_id}"


def parse_kb_ref(text: str | None) -> int | None:
    """'KB-12', 'kb12', '12' -> 12."""
    m = _KB_REF.match(text or "")
    return int(m.group(1)) if m and int(m.group(1)) > 0 else None


@dataclass
class ArticleDraft:
    """What the article form collects; ``tags`` as a comma-separated text or a list."""

    title: str
    symptoms: str = ""
    cause: str = ""
    resolution_steps: str = ""
    category_id: int | None = None
    tags: str | Sequence[str] = ""


def clean_tags(value: str | Sequence[str] | None) -> str:
    """Lower-case, trimmed, de-duplicated tags joined by ', '."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    tags: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValidationError({"tags": "must be text"})
        tag = " ".join(item.split()).lower()
        if not tag:
            continue
        if len(tag) > MAX_TAG_LEN:
            raise ValidationError({"tags": f"'{tag[:20]}…' is longer than {MAX_TAG_LEN} characters"})
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ValidationError({"tags": f"at most {MAX_TAGS} tags"})
    return ", ".join(tags)


def _clean(session: Session, draft: ArticleDraft) -> dict[str, object]:
    errors: dict[str, str] = {}
    values: dict[str, object] = {}

    def attempt(name: str, fn, *args, **kwargs) -> None:
        try:
            values[name] = fn(*args, **kwargs)
        except ValidationError as exc:
            errors.update(exc.fields)

    attempt("title", clean_line, draft.title, "title")
    for name in ("symptoms", "cause", "resolution_steps"):
        attempt(name, lambda v, n: clean_text(v, n, max_len=MAX_ARTICLE_TEXT) or "", getattr(draft, name), name)
    attempt("tags", clean_tags, draft.tags)
    attempt("category_id", clean_id, draft.category_id, "category")
    if values.get("category_id") is not None and session.get(Category, values["category_id"]) is None:
        errors["category"] = f"category {values['category_id']} does not exist"
    if not errors and not str(values.get("resolution_steps") or "").strip() and not str(values.get("symptoms")).strip():
        errors["resolution_steps"] = "write the symptoms or the resolution steps"
    if errors:
        raise ValidationError(errors)
    return values


def _keep_version(session: Session, article: KbArticle, user: User | None, now: datetime, note: str | None) -> None:
    session.add(KbArticleVersion(
        article_id=article.id, version=article.version, title=article.title, symptoms=article.symptoms,
        cause=article.cause, resolution_steps=article.resolution_steps, category_id=article.category_id,
        tags=article.tags, status=article.status, edited_by_id=user.id if user else None, edited_at=now,
        note=(note or "")[:300] or None,
    ))


def _lock_article(session: Session, article_id: int) -> KbArticle:
    if clean_id(article_id, "article") is None:
        raise NotFound("no article given")
    return lock_row(session, KbArticle, article_id, missing=f"article {kb_ref(article_id)} does not exist")


def _check_version(session: Session, article: KbArticle, expected_version: int | None) -> None:
    if expected_version is None:
        raise ValidationError({"expected_version": "required for article changes"})
    if article.version == expected_version:
        return
    later = session.scalars(
        select(KbArticleVersion).where(KbArticleVersion.article_id == article.id,
                                       KbArticleVersion.version > expected_version)
        .order_by(KbArticleVersion.version)
    ).unique().all()
    changes = [f"{v.editor.name if v.editor else 'system'} saved version {v.version} "
               f"({v.note or v.status}) at {v.edited_at:%Y-%m-%d %H:%M} UTC" for v in later]
    raise StaleTicket(kb_ref(article.id), expected=expected_version, current=article.version, changes=changes)


# --- writes ------------------------------------------------------------------------------------------


def create_article(session: Session, *, actor: ActorArg, draft: ArticleDraft, source_ticket_id: int | None = None,
                   now: datetime | None = None) -> KbArticle:
    """A new draft article (version 1)."""
    now = now_utc(now)
    user = load_actor(session, actor)
    values = _clean(session, draft)
    article = KbArticle(**values, status=KbStatus.DRAFT.value, author_id=user.id if user else None,
                        source_ticket_id=source_ticket_id, created_at=now, updated_at=now, version=1)
    session.add(article)
    session.flush()
    _keep_version(session, article, user, now, "created")
    return article


def draft_from_ticket(session: Session, *, actor: ActorArg, ticket_id: int, now: datetime | None = None) -> KbArticle:
    """Draft an article from a resolved ticket: its summary, device, description, root cause, workaround and
    resolution. Asking twice returns the draft made the first time."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.INTERNAL_NOTE, user, ticket)
    existing = session.scalar(select(KbArticle).where(KbArticle.source_ticket_id == ticket.id)
                              .order_by(KbArticle.id).limit(1))
    if existing is not None:
        return existing
    if ticket.resolved_at is None or not (ticket.resolution_notes or "").strip():
        raise ValidationError({"ticket": f"{ref(ticket)} is not resolved: an article is drafted from a resolved "
                                         "ticket's resolution notes"})
    device_bits = []
    if ticket.device is not None:
        d = ticket.device
        device_bits = [x for x in (d.make_model, d.device_type, d.os) if x]
    symptoms = ticket.description.strip() if ticket.description else ""
    if device_bits:
        symptoms = (symptoms + "\n\n" if symptoms else "") + "Device: " + " · ".join(device_bits)
    elif ticket.device_details:
        symptoms = (symptoms + "\n\n" if symptoms else "") + "Device: " + " · ".join(ticket.device_details.splitlines())
    if ticket.root_cause:
        cause = ticket.root_cause
    elif ticket.root_cause_unknown_reason:
        cause = f"Not identified: {ticket.root_cause_unknown_reason}"
    else:
        cause = ""
    steps = ticket.resolution_notes or ""
    if ticket.workaround:
        steps += f"\n\n**Workaround** (until fixed):\n\n{ticket.workaround}"
    tags = [t for t in ((ticket.device.device_type if ticket.device else None),
                        (ticket.device.make_model if ticket.device else None)) if t]
    draft = ArticleDraft(title=ticket.summary, symptoms=symptoms or ticket.summary, cause=cause,
                         resolution_steps=steps, category_id=ticket.category_id, tags=tags)
    article = create_article(session, actor=actor, draft=draft, source_ticket_id=ticket.id, now=now)
    session.add(KbArticleTicket(article_id=article.id, ticket_id=ticket.id, solved=False,
                                linked_by_id=user.id if user else None, linked_at=now))
    add_event(session, ticket, EventKind.KB_DRAFTED, actor=user, actor_label=None if user else "system", now=now,
              body=f"KB article drafted from this ticket: {kb_ref(article.id)} {article.title}",
              meta={"article_id": article.id})
    return article


def update_article(session: Session, *, actor: ActorArg, article_id: int, expected_version: int | None,
                   draft: ArticleDraft, note: str | None = None, now: datetime | None = None) -> KbArticle:
    """Save an edit as a new version (the old one is kept). Published articles: senior technicians and leads."""
    now = now_utc(now)
    user = load_actor(session, actor)
    article = _lock_article(session, article_id)
    if article.status == KbStatus.PUBLISHED.value:
        require_permission(user, Permission.PUBLISH_KB, "edit a published article (ask a senior, or have it unpublished)")
    values = _clean(session, draft)
    note = clean_line(note, "note", required=False, max_len=300)
    _check_version(session, article, expected_version)
    if all(getattr(article, k) == v for k, v in values.items()):
        return article  # nothing changed: no new version
    for k, v in values.items():
        setattr(article, k, v)
    article.version += 1
    article.updated_at = now
    _keep_version(session, article, user, now, note or "edited")
    return article


def publish(session: Session, *, actor: ActorArg, article_id: int, expected_version: int | None,
            now: datetime | None = None) -> KbArticle:
    """Make an article visible in suggestions and search (senior technicians and leads)."""
    return _set_status(session, actor=actor, article_id=article_id, expected_version=expected_version,
                       status=KbStatus.PUBLISHED, now=now, note="published")


def unpublish(session: Session, *, actor: ActorArg, article_id: int, expected_version: int | None, reason: str,
              now: datetime | None = None) -> KbArticle:
    """Take an article back to draft (e.g. it turned out wrong), with a reason kept in its history."""
    why = clean_line(reason, "reason", max_len=250)
    return _set_status(session, actor=actor, article_id=article_id, expected_version=expected_version,
                       status=KbStatus.DRAFT, now=now, note=f"unpublished: {why}")


def _set_status(session: Session, *, actor: ActorArg, article_id: int, expected_version: int | None,
                status: KbStatus, now: datetime | None, note: str) -> KbArticle:
    now = now_utc(now)
    user = load_actor(session, actor)
    require_permission(user, Permission.PUBLISH_KB, "publish or unpublish an article")
    article = _lock_article(session, article_id)
    _check_version(session, article, expected_version)
    if article.status == status.value:
        raise ValidationError({"status": f"{kb_ref(article.id)} is already {status.value}"})
    article.status = status.value
    if status is KbStatus.PUBLISHED:
        article.published_at, article.published_by_id = now, user.id if user else None
    article.version += 1
    article.updated_at = now
    _keep_version(session, article, user, now, note)
    return article


def link_article(session: Session, *, actor: ActorArg, article_id: int, ticket_id: int, solved: bool = False,
                 now: datetime | None = None) -> KbArticleTicket:
    """Link an article to a ticket; ``solved`` records "solved with KB-12" (counted in the metrics).
    Linking again with ``solved`` marks an existing link; any staff member may link."""
    now = now_utc(now)
    user = load_actor(session, actor)
    ticket = lock_ticket(session, ticket_id)
    require(Action.INTERNAL_NOTE, user, ticket)
    if clean_id(article_id, "article") is None:
        raise ValidationError({"article": "choose an article"})
    article = session.get(KbArticle, article_id)
    if article is None:
        raise ValidationError({"article": f"{kb_ref(article_id)} does not exist"})
    link = session.get(KbArticleTicket, (article.id, ticket.id))
    if link is not None and (link.solved or not solved):
        return link  # nothing new
    if link is None:
        link = KbArticleTicket(article_id=article.id, ticket_id=ticket.id, solved=bool(solved),
                               linked_by_id=user.id if user else None, linked_at=now)
        session.add(link)
    else:
        link.solved, link.linked_at, link.linked_by_id = True, now, user.id if user else link.linked_by_id
    label = f"Solved with {kb_ref(article.id)}" if solved else f"Linked {kb_ref(article.id)}"
    add_event(session, ticket, EventKind.KB_LINKED, actor=user, actor_label=None if user else "system", now=now,
              body=f"{label}: {article.title}", meta={"article_id": article.id, "solved": bool(solved)})
    return link


# --- reads ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArticleRow:
    id: int
    ref: str
    title: str
    category_id: int | None
    category: str | None
    tags: str
    status: str
    author: str | None
    updated_at: datetime
    version: int
    solved_count: int


def get_article(session: Session, article_id: int) -> KbArticle | None:
    if clean_id_or_none(article_id) is None:
        return None
    return session.get(KbArticle, article_id)


def clean_id_or_none(value: object) -> int | None:
    try:
        return clean_id(value, "id")
    except ValidationError:
        return None


def list_articles(session: Session, *, category_id: int | None = None, status: KbStatus | None = None,
                  limit: int = 100, offset: int = 0) -> list[ArticleRow]:
    """Articles newest first, with how many tickets each solved; ``status`` None means all."""
    solved = (select(KbArticleTicket.article_id, func.count().label("n"))
              .where(KbArticleTicket.solved.is_(True)).group_by(KbArticleTicket.article_id).subquery())
    stmt = (
        select(KbArticle.id, KbArticle.title, KbArticle.category_id, Category.name, KbArticle.tags, KbArticle.status,
               User.name, KbArticle.updated_at, KbArticle.version, func.coalesce(solved.c.n, 0))
        .outerjoin(Category, Category.id == KbArticle.category_id)
        .outerjoin(User, User.id == KbArticle.author_id)
        .outerjoin(solved, solved.c.article_id == KbArticle.id)
        .order_by(KbArticle.updated_at.desc(), KbArticle.id.desc())
        .limit(max(1, min(limit, 500))).offset(max(0, offset))
    )
    if category_id is not None:
        stmt = stmt.where(KbArticle.category_id == category_id)
    if status is not None:
        stmt = stmt.where(KbArticle.status == KbStatus(status).value)
    return [ArticleRow(r[0], kb_ref(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], int(r[9]))
            for r in session.execute(stmt)]


def category_counts(session: Session, *, include_drafts: bool = False) -> list[tuple[int | None, str, int]]:
    """(category id, name, number of articles) for browsing; articles without a category as 'Uncategorised'."""
    stmt = (select(KbArticle.category_id, Category.name, func.count())
            .outerjoin(Category, Category.id == KbArticle.category_id)
            .group_by(KbArticle.category_id, Category.name).order_by(Category.name))
    if not include_drafts:
        stmt = stmt.where(KbArticle.status == KbStatus.PUBLISHED.value)
    return [(cid, name or "Uncategorised", int(n)) for cid, name, n in session.execute(stmt)]


def versions(session: Session, article_id: int) -> list[KbArticleVersion]:
    return list(session.scalars(
        select(KbArticleVersion).where(KbArticleVersion.article_id == article_id)
        .order_by(KbArticleVersion.version.desc())
    ).unique())


@dataclass(frozen=True)
class LinkedTicket:
    ticket_id: int
    summary: str
    status: str
    solved: bool
    linked_at: datetime


def linked_tickets(session: Session, article_id: int, *, limit: int = 50) -> list[LinkedTicket]:
    rows = session.execute(
        select(Ticket.id, Ticket.summary, Ticket.status, KbArticleTicket.solved, KbArticleTicket.linked_at)
        .join(KbArticleTicket, KbArticleTicket.ticket_id == Ticket.id)
        .where(KbArticleTicket.article_id == article_id)
        .order_by(KbArticleTicket.linked_at.desc()).limit(limit)
    ).all()
    return [LinkedTicket(*r) for r in rows]


@dataclass(frozen=True)
class LinkedArticle:
    article_id: int
    ref: str
    title: str
    status: str
    solved: bool
    linked_at: datetime


def articles_for_ticket(session: Session, ticket_id: int) -> list[LinkedArticle]:
    rows = session.execute(
        select(KbArticle.id, KbArticle.title, KbArticle.status, KbArticleTicket.solved, KbArticleTicket.linked_at)
        .join(KbArticleTicket, KbArticleTicket.article_id == KbArticle.id)
        .where(KbArticleTicket.ticket_id == ticket_id).order_by(KbArticleTicket.linked_at)
    ).all()
    return [LinkedArticle(r[0], kb_ref(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


@dataclass(frozen=True)
class SolvedCount:
    article_id: int
    ref: str
    title: str
    count: int


def kb_solved_counts(session: Session, start: datetime, end: datetime) -> list[SolvedCount]:
    """How many tickets each article solved ("solved with KB-12" recorded in [start, end)), most first."""
    rows = session.execute(
        select(KbArticle.id, KbArticle.title, func.count())
        .join(KbArticleTicket, KbArticleTicket.article_id == KbArticle.id)
        .where(KbArticleTicket.solved.is_(True), KbArticleTicket.linked_at >= start, KbArticleTicket.linked_at < end)
        .group_by(KbArticle.id, KbArticle.title)
        .order_by(func.count().desc(), KbArticle.id)
    ).all()
    return [SolvedCount(r[0], kb_ref(r[0]), r[1], int(r[2])) for r in rows]
