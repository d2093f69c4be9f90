"""Parse monitoring webhook bodies into normalised alerts.

Two senders are understood:

* Prometheus Alertmanager webhook (``"version": "4"``, ``receiver``, ``groupKey``),
  including older bodies whose alerts carry neither ``status`` nor ``fingerprint``;
* Grafana unified alerting webhook (``orgId``, ``state``, ``title``; alerts carry
  ``values``, ``silenceURL``, ``dashboardURL`` and ``panelURL``).

Every problem with the body is reported as :class:`AlertPayloadError`, whose message
names the offending part. Alerts are numbered by their index in ``alerts``, from 0.
Standard library only, so it can run in the web process and in scripts alike.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_BODY_BYTES = 1024 * 1024
PRIORITIES = ("low", "medium", "high", "critical")
SUMMARY_MAX_CHARS = 200

_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})")
_URL_FIELDS = (
    ("generatorURL", "Source"), ("dashboardURL", "Dashboard"), ("panelURL", "Panel"), ("silenceURL", "Silence")
)
_TEXT_ANNOTATIONS = ("description", "message")


class AlertPayloadError(ValueError):
    """The webhook body cannot be turned into alerts; the message says why."""


_SEVERITY_TO_PRIORITY = {
    "critical": "critical", "page": "critical", "error": "high", "high": "high", "major": "high",
    "warning": "medium", "warn": "medium", "minor": "low", "info": "low", "none": "low",
}


@dataclass(frozen=True)
class AlertMapping:
    """How alert labels become ticket priority and category."""

    severity_to_priority: dict[str, str] = field(default_factory=lambda: dict(_SEVERITY_TO_PRIORITY))
    default_priority: str = "high"
    severity_labels: tuple[str, ...] = ("severity", "priority", "level")
    category_labels: tuple[str, ...] = ("category", "team", "service")
    default_category: str = "Networking"
    known_categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = sorted({self.default_priority, *self.severity_to_priority.values()} - set(PRIORITIES))
        if bad:
            raise ValueError(f"unknown priority {bad[0]!r}; expected one of {', '.join(PRIORITIES)}")

    def priority_for(self, labels: dict[str, str]) -> str:
        """Priority from the first severity label that is present and non-empty."""
        table = {key.strip().lower(): value for key, value in self.severity_to_priority.items()}
        for name in self.severity_labels:
            value = labels.get(name, "").strip().lower()
            if value:  # unknown values fall back to the default, not to the next label
                return table.get(value, value if value in PRIORITIES else self.default_priority)
        return self.default_priority

    def category_for(self, labels: dict[str, str]) -> str:
        """First non-empty category label (limited to known_categories if set), else the default."""
        known = {name.lower(): name for name in self.known_categories}
        for name in self.category_labels:
            value = labels.get(name, "").strip()
            if value and (not known or value.lower() in known):
                return known.get(value.lower(), value)
        return self.default_category


@dataclass(frozen=True)
class NormalisedAlert:
    """One alert, ready to become a ticket. ``fingerprint`` identifies it across repeats:
    the sender's own, else the SHA-256 of its labels as sorted compact JSON."""

    source: str  # "alertmanager" | "grafana"
    fingerprint: str
    status: str
    name: str
    summary: str
    description: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime | None  # UTC; None when unset
    ends_at: datetime | None
    priority: str  # one of PRIORITIES
    category: str
    generator_url: str | None


DEFAULT_MAPPING = AlertMapping()


def parse_alert_payload(body: bytes | str, *, mapping: AlertMapping = DEFAULT_MAPPING) -> list[NormalisedAlert]:
    """Parse an Alertmanager or Grafana webhook body (at most MAX_BODY_BYTES of UTF-8 JSON).

    Returns the alerts in body order; raises AlertPayloadError for anything malformed."""
    data = _load_json(body)
    source = _detect_source(data)
    raw_alerts = data.get("alerts")
    if raw_alerts is None:
        hint = " (legacy Grafana alerting bodies are not supported)" if source == "grafana" else ""
        raise AlertPayloadError(f"missing 'alerts' list{hint}")
    if not isinstance(raw_alerts, list):
        raise AlertPayloadError(f"'alerts' must be a list, got {_type(raw_alerts)}")
    top_status = data.get("status")
    # Grafana's group title only describes the alert when there is exactly one.
    title = data.get("title") if source == "grafana" and len(raw_alerts) == 1 else None
    title = title if isinstance(title, str) else None
    return [
        _parse_alert(index, raw, source, top_status, title, mapping)
        for index, raw in enumerate(raw_alerts)
    ]


def _load_json(body: Any) -> dict[str, Any]:
    too_large = AlertPayloadError(f"body is too large: over {MAX_BODY_BYTES} bytes")
    if isinstance(body, str):
        if len(body) > MAX_BODY_BYTES:
            raise too_large
        body = body.encode("utf-8", "surrogatepass")
    elif isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    elif not isinstance(body, bytes):
        raise AlertPayloadError(f"body must be bytes or str, got {_type(body)}")
    if len(body) > MAX_BODY_BYTES:
        raise too_large
    if not body.strip():
        raise AlertPayloadError("body is empty")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AlertPayloadError(f"body is not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AlertPayloadError(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise AlertPayloadError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise AlertPayloadError(f"body must be a JSON object, got {_type(data)}")
    return data


def _detect_source(data: dict[str, Any]) -> str:
    if any(key in data for key in ("orgId", "state", "title")):
        return "grafana"
    if str(data.get("version")) == "4" or "receiver" in data or "groupKey" in data:
        return "alertmanager"
    raise AlertPayloadError(
        "unrecognised webhook body: expected Alertmanager ('version' 4, 'receiver', 'groupKey') "
        "or Grafana ('orgId', 'state', 'title') fields"
    )


def _parse_alert(
    index: int, raw: Any, source: str, top_status: Any, title: str | None, mapping: AlertMapping
) -> NormalisedAlert:
    where = f"alert {index}"
    if not isinstance(raw, dict):
        raise AlertPayloadError(f"{where}: must be an object, got {_type(raw)}")
    labels = _string_map(raw.get("labels"), f"{where}: 'labels'")
    annotations = _string_map(raw.get("annotations"), f"{where}: 'annotations'")
    status = raw.get("status", top_status)
    if status is None:
        raise AlertPayloadError(f"{where}: 'status' is missing (and the body has no 'status')")
    if status not in ("firing", "resolved"):
        raise AlertPayloadError(f"{where}: 'status' must be 'firing' or 'resolved', got {status!r}")
    fingerprint = _optional_str(raw, "fingerprint", where) or _label_hash(labels)
    urls = {key: _optional_str(raw, key, where) for key, _ in _URL_FIELDS}
    values = raw.get("values")
    if values is not None and not isinstance(values, dict):
        raise AlertPayloadError(f"{where}: 'values' must be an object, got {_type(values)}")
    name = labels.get("alertname", "").strip() or "Alert"
    return NormalisedAlert(
        source=source,
        fingerprint=fingerprint,
        status=status,
        name=name,
        summary=_summary(annotations, title, name, labels),
        description=_description(annotations, labels, values or {}, urls),
        labels=labels,
        annotations=annotations,
        starts_at=_timestamp(raw, "startsAt", where),
        ends_at=_timestamp(raw, "endsAt", where),
        priority=mapping.priority_for(labels),
        category=mapping.category_for(labels),
        generator_url=urls["generatorURL"],
    )


def _string_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AlertPayloadError(f"{what} must be an object, got {_type(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise AlertPayloadError(f"{what}: value of {key!r} must be a string, got {_type(item)}")
    return dict(value)


def _optional_str(raw: dict[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise AlertPayloadError(f"{where}: {key!r} must be a string, got {_type(value)}")
    return value.strip() or None


def _label_hash(labels: dict[str, str]) -> str:
    canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _timestamp(raw: dict[str, Any], key: str, where: str) -> datetime | None:
    value = _optional_str(raw, key, where)
    if value is None:
        return None
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        raise AlertPayloadError(f"{where}: {key!r} is not an RFC 3339 timestamp: {value!r}")
    date, clock, fraction, offset = match.groups()
    if date.startswith("0001-"):  # Go's zero time: Alertmanager's "not set"
        return None
    micros = (fraction or "")[:6].ljust(6, "0")
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        parsed = datetime.fromisoformat(f"{date}T{clock}.{micros}{offset}")
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise AlertPayloadError(f"{where}: {key!r} is not a valid time: {value!r} ({exc})") from exc


def _summary(annotations: dict[str, str], title: str | None, name: str, labels: dict[str, str]) -> str:
    text = next((t for t in (annotations.get("summary"), annotations.get("title"), title) if t and t.strip()), "")
    if not text:
        target = labels.get("instance") or labels.get("job")
        text = f"{name} on {target}" if target else name
    line = " ".join(text.split())
    if len(line) > SUMMARY_MAX_CHARS:
        line = line[: SUMMARY_MAX_CHARS - 1].rstrip() + "…"
    return line


def _description(
    annotations: dict[str, str], labels: dict[str, str], values: dict[str, Any], urls: dict[str, str | None]
) -> str:
    blocks = [annotations[key].strip() for key in _TEXT_ANNOTATIONS if annotations.get(key, "").strip()]
    others = {k: v for k, v in annotations.items() if k not in (*_TEXT_ANNOTATIONS, "summary")}
    for heading, pairs in (("Labels", labels), ("Annotations", others), ("Values", values)):
        if pairs:
            lines = [f"{key}={_text(pairs[key])}" for key in sorted(pairs)]
            blocks.append(f"{heading}:\n" + "\n".join(lines))
    links = [f"{label}: {urls[key]}" for key, label in _URL_FIELDS if urls[key]]
    if links:
        blocks.append("\n".join(links))
    return "\n\n".join(blocks)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)
