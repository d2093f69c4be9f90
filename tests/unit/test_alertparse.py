"""Tests for lib.alerts.parse: Alertmanager / Grafana webhook bodies -> normalised alerts."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.alerts.parse import (
    MAX_BODY_BYTES,
    PRIORITIES,
    AlertMapping,
    AlertPayloadError,
    NormalisedAlert,
    parse_alert_payload,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ALERTS_DIR = PROJECT_ROOT.parent / "shared" / "testdata" / "alerts"
SHA256_HEX = set("0123456789abcdef")


@pytest.fixture(scope="module")
def alerts_dir() -> Path:
    if not ALERTS_DIR.is_dir():
        pytest.skip(f"shared testdata folder not found: {ALERTS_DIR}")
    return ALERTS_DIR


def _label_hash(labels: dict[str, str]) -> str:
    canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _am(*alerts: dict, **top: object) -> str:
    """A minimal Alertmanager v4 body around the given alerts."""
    body = {"version": "4", "receiver": "helpdesk", "status": "firing", "groupKey": "{}:{}"}
    body.update(top, alerts=list(alerts))
    return json.dumps(body)


def _alert(**fields: object) -> dict:
    alert: dict = {
        "status": "firing",
        "labels": {"alertname": "DiskFull", "instance": "db1:9100", "severity": "warning"},
        "annotations": {"summary": "Disk almost full on db1"},
        "startsAt": "2024-05-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
    }
    alert.update(fields)
    return alert


def _one(body: str | bytes, mapping: AlertMapping | None = None) -> NormalisedAlert:
    alerts = parse_alert_payload(body, mapping=mapping) if mapping is not None else parse_alert_payload(body)
    assert len(alerts) == 1
    return alerts[0]


def _check_invariants(alert: NormalisedAlert) -> None:
    assert alert.source in ("alertmanager", "grafana")
    assert alert.status in ("firing", "resolved")
    assert alert.priority in PRIORITIES
    assert alert.fingerprint
    assert alert.name
    assert alert.summary and "\n" not in alert.summary and len(alert.summary) <= 200
    for moment in (alert.starts_at, alert.ends_at):
        assert moment is None or moment.utcoffset() == UTC.utcoffset(None)


# --- shared real-world payloads -------------------------------------------------------------


def test_every_shared_payload_parses(alerts_dir: Path) -> None:
    paths = sorted(alerts_dir.glob("*.json"))
    assert len(paths) >= 4, f"expected the shared alert payloads in {alerts_dir}"
    for path in paths:
        alerts = parse_alert_payload(path.read_bytes())
        assert alerts, path.name
        for alert in alerts:
            _check_invariants(alert)


def test_large_alertmanager_body_gives_19_distinct_alerts(alerts_dir: Path) -> None:
    alerts = parse_alert_payload((alerts_dir / "alertmanager_msteams_large_19_alerts.json").read_bytes())
    assert len(alerts) == 19
    # Every alert has different labels, so the label-hash fingerprints must all differ.
    assert len({json.dumps(a.labels, sort_keys=True) for a in alerts}) == 19
    assert len({a.fingerprint for a in alerts}) == 19
    assert all(len(a.fingerprint) == 64 and set(a.fingerprint) <= SHA256_HEX for a in alerts)
    assert {a.source for a in alerts} == {"alertmanager"}
    assert {a.status for a in alerts} == {"firing"}  # no per-alert status: taken from the body
    assert {a.name for a in alerts} == {"NodeEvent"}
    assert {a.priority for a in alerts} == {"critical"}  # severity=page
    first = alerts[0]
    assert first.summary == "Server is down. `infrastructure002A` - `user3environmentc`"
    assert first.description.startswith("Server `infrastructure002A` in `user3environmentc`")
    assert "alias=infrastructure002A" in first.description
    assert first.starts_at == datetime(2019, 1, 9, 15, 20, 40, 341301, tzinfo=UTC)  # 9-digit fraction
    assert first.ends_at is None
    assert first.generator_url is None
    assert first.category == "infrastructurevmenvironmentcuser3cne1"  # 'service' label
    assert alerts[2].starts_at == datetime(2019, 1, 10, 2, 58, 40, 360642, tzinfo=UTC)


def test_large_alertmanager_body_with_known_categories_falls_back(alerts_dir: Path) -> None:
    mapping = AlertMapping(known_categories=("Database", "Networking"), default_category="Infrastructure")
    alerts = parse_alert_payload(
        (alerts_dir / "alertmanager_msteams_large_19_alerts.json").read_bytes(), mapping=mapping
    )
    assert {a.category for a in alerts} == {"Infrastructure"}


def test_old_alertmanager_body_gets_stable_label_hash_fingerprint(alerts_dir: Path) -> None:
    path = alerts_dir / "alertmanager_msteams_prom_post_request.json"
    raw = path.read_bytes()
    alert = _one(raw)
    assert alert.fingerprint == _label_hash(alert.labels)
    assert _one(raw).fingerprint == alert.fingerprint
    assert _one(raw.decode("utf-8")).fingerprint == alert.fingerprint
    # Key order in the body does not matter.
    data = json.loads(raw)
    data["alerts"][0]["labels"] = dict(reversed(list(data["alerts"][0]["labels"].items())))
    assert _one(json.dumps(data)).fingerprint == alert.fingerprint

    assert alert.source == "alertmanager"
    assert alert.status == "firing"
    assert alert.name == "high_memory_load"
    assert alert.summary == "Server High Memory usage"
    assert alert.priority == "medium"  # severity=warning
    assert alert.category == "Networking"
    assert alert.starts_at == datetime(2018, 3, 7, 11, 33, 21, 873077, tzinfo=UTC)  # from -05:00
    assert alert.ends_at is None
    assert "10.80.40.11 reported high memory usage with 23.28%." in alert.description
    assert "instance=instance-with-hyphen_and_underscore" in alert.description.splitlines()


def test_label_hash_fingerprint_is_stable_across_processes(alerts_dir: Path) -> None:
    path = alerts_dir / "alertmanager_msteams_prom_post_request.json"
    code = (
        "import sys; from pathlib import Path; from lib.alerts.parse import parse_alert_payload; "
        "print(parse_alert_payload(Path(sys.argv[1]).read_bytes())[0].fingerprint)"
    )
    seen = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code, str(path)], cwd=PROJECT_ROOT, env=env,
            capture_output=True, text=True, check=True, timeout=60,
        )
        seen.add(done.stdout.strip())
    assert seen == {_one(path.read_bytes()).fingerprint}


def test_official_alertmanager_payload_keeps_its_fingerprint(alerts_dir: Path) -> None:
    alert = _one((alerts_dir / "alertmanager_official_exec_testdata_success.json").read_bytes())
    assert alert.source == "alertmanager"  # version "1", but receiver/groupKey present
    assert alert.fingerprint == "4ea129fd903f0e45"
    assert alert.status == "firing"
    assert alert.labels == {"Message": "message"}
    assert alert.annotations == {}
    assert alert.name == "Alert"  # no alertname label
    assert alert.summary == "Alert"
    assert alert.starts_at == datetime(1970, 1, 1, tzinfo=UTC)
    assert alert.ends_at is None
    assert alert.generator_url is None  # "" in the body
    assert alert.priority == "high"  # no severity label -> default
    assert "Message=message" in alert.description


def test_grafana_payload_keeps_fingerprints_and_values(alerts_dir: Path) -> None:
    alerts = parse_alert_payload((alerts_dir / "grafana_webhook_docs_firing.json").read_bytes())
    assert [a.fingerprint for a in alerts] == ["c6eadffa33fcdf37", "bc97ff14869b13e3"]
    assert [a.name for a in alerts] == ["High memory usage", "High CPU usage"]
    assert {a.source for a in alerts} == {"grafana"}
    assert {a.status for a in alerts} == {"firing"}
    memory = alerts[0]
    assert memory.summary == "This alert was triggered for zone us-1"
    assert memory.generator_url == "https://play.grafana.org/alerting/1afz29v7z/edit"
    assert memory.starts_at == datetime(2021, 10, 12, 7, 51, 3, 157076, tzinfo=UTC)
    assert memory.ends_at is None
    assert memory.category == "blue"  # 'team' label
    assert memory.priority == "high"
    lines = memory.description.splitlines()
    assert lines[0] == "The system has high memory usage"
    assert "B=44.23943737541908" in lines and "C=1" in lines
    assert "runbook_url=https://myrunbook.com/runbook/1234" in lines
    assert "Source: https://play.grafana.org/alerting/1afz29v7z/edit" in lines
    assert any(line.startswith("Silence: https://play.grafana.org/alerting/silence/new?") for line in lines)
    assert not any(line.startswith(("Dashboard:", "Panel:")) for line in lines)  # empty in the body


def test_grafana_payload_category_uses_known_spelling(alerts_dir: Path) -> None:
    mapping = AlertMapping(known_categories=("Networking", "Blue"))
    alerts = parse_alert_payload((alerts_dir / "grafana_webhook_docs_firing.json").read_text(), mapping=mapping)
    assert {a.category for a in alerts} == {"Blue"}


# --- priority and category mapping ----------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "priority"),
    [
        ("critical", "critical"),
        ("page", "critical"),
        ("ERROR", "high"),
        ("major", "high"),
        (" Warning ", "medium"),
        ("warn", "medium"),
        ("minor", "low"),
        ("info", "low"),
        ("none", "low"),
        ("low", "low"),  # already a priority name
        ("medium", "medium"),
        ("disaster", "high"),  # unknown -> default_priority
        ("", "high"),  # empty -> default_priority
    ],
)
def test_severity_maps_to_priority(severity: str, priority: str) -> None:
    alert = _one(_am(_alert(labels={"alertname": "X", "severity": severity})))
    assert alert.priority == priority


def test_unknown_severity_uses_configured_default() -> None:
    mapping = AlertMapping(default_priority="low")
    assert _one(_am(_alert(labels={"severity": "disaster"})), mapping).priority == "low"
    assert _one(_am(_alert(labels={})), mapping).priority == "low"


def test_severity_label_order_and_custom_table() -> None:
    assert _one(_am(_alert(labels={"level": "info"}))).priority == "low"
    assert _one(_am(_alert(labels={"priority": "critical", "level": "info"}))).priority == "critical"
    mapping = AlertMapping(severity_to_priority={"SEV1": "critical"}, severity_labels=("sev",))
    assert _one(_am(_alert(labels={"sev": "sev1", "severity": "info"})), mapping).priority == "critical"


def test_mapping_rejects_unknown_priorities() -> None:
    with pytest.raises(ValueError, match="unknown priority 'urgent'"):
        AlertMapping(default_priority="urgent")
    with pytest.raises(ValueError, match="unknown priority 'p1'"):
        AlertMapping(severity_to_priority={"critical": "p1"})


def test_category_from_labels() -> None:
    labels = {"alertname": "X", "team": "dba", "service": "postgres"}
    assert _one(_am(_alert(labels=labels))).category == "dba"
    assert _one(_am(_alert(labels={**labels, "category": "Storage"}))).category == "Storage"
    assert _one(_am(_alert(labels={"alertname": "X"}))).category == "Networking"
    assert _one(_am(_alert(labels={"alertname": "X"})), AlertMapping(default_category="Ops")).category == "Ops"


def test_category_with_known_categories() -> None:
    mapping = AlertMapping(known_categories=("Database", "Networking"), default_category="Other")
    # 'team' is unknown, so the next label ('service') is tried; the known spelling is returned.
    labels = {"alertname": "X", "team": "dba", "service": "DATABASE"}
    assert _one(_am(_alert(labels=labels)), mapping).category == "Database"
    assert _one(_am(_alert(labels={"team": "dba"})), mapping).category == "Other"


# --- status, time stamps, summary ----------------------------------------------------------


def test_resolved_alert() -> None:
    alert = _one(_am(_alert(status="resolved", endsAt="2024-05-01T10:30:00.5+02:00"), status="resolved"))
    assert alert.status == "resolved"
    assert alert.ends_at == datetime(2024, 5, 1, 8, 30, 0, 500000, tzinfo=UTC)


def test_missing_alert_status_uses_body_status() -> None:
    raw = _alert()
    del raw["status"]
    assert _one(_am(raw, status="resolved")).status == "resolved"


def test_zero_time_means_unset() -> None:
    alert = _one(_am(_alert(startsAt="0001-01-01T00:00:00Z", endsAt="0001-01-01T00:00:00Z")))
    assert alert.starts_at is None and alert.ends_at is None
    assert _one(_am(_alert(startsAt=""))).starts_at is None
    raw = _alert()
    del raw["startsAt"]
    assert _one(_am(raw)).starts_at is None


def test_time_stamps_are_utc_aware() -> None:
    alert = _one(_am(_alert(startsAt="2024-05-01T15:30:00.123456789+05:30")))
    assert alert.starts_at == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert alert.starts_at.tzinfo is UTC
    assert _one(_am(_alert(startsAt="2024-05-01T10:00:00Z"))).starts_at == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_summary_fallbacks() -> None:
    labels = {"alertname": "NodeDown", "instance": "web1:9100", "job": "node"}
    assert _one(_am(_alert(labels=labels, annotations={}))).summary == "NodeDown on web1:9100"
    del labels["instance"]
    assert _one(_am(_alert(labels=labels, annotations={}))).summary == "NodeDown on node"
    blank_summary = {"summary": " ", "title": "Node gone"}
    assert _one(_am(_alert(labels=labels, annotations=blank_summary))).summary == "Node gone"
    long = "line one\nline two " + "x" * 500
    summary = _one(_am(_alert(annotations={"summary": long}))).summary
    assert len(summary) == 200 and summary.startswith("line one line two x") and summary.endswith("…")


def test_grafana_title_is_summary_for_single_alert_without_summary() -> None:
    body = {"orgId": 1, "state": "alerting", "title": "[FIRING:1] CPU high", "status": "firing",
            "alerts": [_alert(annotations={}, values={"A": 97.5})]}
    alert = _one(json.dumps(body))
    assert alert.source == "grafana"
    assert alert.summary == "[FIRING:1] CPU high"
    assert "A=97.5" in alert.description.splitlines()


def test_description_lists_annotations_and_labels() -> None:
    raw = _alert(annotations={"summary": "S", "description": "Disk is 95% full.", "message": "Check /var",
                              "runbook_url": "https://wiki/runbooks/disk"},
                 generatorURL="http://prometheus:9090/graph?g0.expr=x")
    alert = _one(_am(raw))
    blocks = alert.description.split("\n\n")
    assert blocks[:2] == ["Disk is 95% full.", "Check /var"]
    assert "alertname=DiskFull\ninstance=db1:9100\nseverity=warning" in alert.description
    assert "runbook_url=https://wiki/runbooks/disk" in alert.description
    assert blocks[-1] == "Source: http://prometheus:9090/graph?g0.expr=x"
    assert alert.generator_url == "http://prometheus:9090/graph?g0.expr=x"


def test_body_with_bom_and_escaped_surrogate_label() -> None:
    body = "\ufeff" + _am(_alert(labels={"alertname": "X", "host": "\ud800"}))
    alert = _one(body.encode("utf-8", "surrogatepass"))
    assert alert.labels["host"] == "\ud800" and len(alert.fingerprint) == 64


# --- bad input ------------------------------------------------------------------------------


def _am_raw(alerts: object) -> str:
    return json.dumps({"version": "4", "alerts": alerts})


BAD_BODIES = [
    (b"", "body is empty"),
    (" \n\t", "body is empty"),
    ("not json", "body is not valid JSON: Expecting value at line 1 column 1"),
    ('{"version": "4",', "body is not valid JSON: Expecting property name enclosed in double quotes"),
    (b'\xff{"version": "4"}', "body is not valid UTF-8"),
    ("[" * 100_000, "body is not valid JSON"),
    ('{"version": "4", "n": ' + "1" * 5000 + "}", "body is not valid JSON"),
    ("[]", "body must be a JSON object, got list"),
    ("null", "body must be a JSON object, got null"),
    ('"alerts"', "body must be a JSON object, got string"),
    ('{"alerts": []}', "unrecognised webhook body"),
    ('{"version": "4", "status": "firing"}', "missing 'alerts' list"),
    ('{"orgId": 1, "state": "alerting", "ruleName": "x"}', "legacy Grafana alerting bodies are not supported"),
    (_am_raw({}), "'alerts' must be a list, got object"),
    (_am_raw(None), "missing 'alerts' list"),
    (_am_raw(["x"]), "alert 0: must be an object, got string"),
    (_am(_alert(), _alert(labels=[])), "alert 1: 'labels' must be an object, got list"),
    (_am(_alert(labels={"severity": 3})), "alert 0: 'labels': value of 'severity' must be a string, got int"),
    (_am(_alert(annotations="text")), "alert 0: 'annotations' must be an object, got string"),
    (_am(_alert(), _alert(), _alert(), _alert(status="pending")),
     "alert 3: 'status' must be 'firing' or 'resolved', got 'pending'"),
    (_am_raw([{"labels": {}}]), "alert 0: 'status' is missing"),
    (_am(_alert(fingerprint=123)), "alert 0: 'fingerprint' must be a string, got int"),
    (_am(_alert(generatorURL=True)), "alert 0: 'generatorURL' must be a string, got boolean"),
    (_am(_alert(startsAt=5)), "alert 0: 'startsAt' must be a string, got int"),
    (_am(_alert(startsAt="yesterday")), "alert 0: 'startsAt' is not an RFC 3339 timestamp: 'yesterday'"),
    (_am(_alert(endsAt="2024-13-40T00:00:00Z")), "alert 0: 'endsAt' is not a valid time"),
    (_am(_alert(endsAt="9999-12-31T23:00:00-05:00")), "alert 0: 'endsAt' is not a valid time"),
    (_am(_alert(values=[1, 2])), "alert 0: 'values' must be an object, got list"),
]


@pytest.mark.parametrize(("body", "fragment"), BAD_BODIES, ids=[fragment for _, fragment in BAD_BODIES])
def test_bad_input_raises_payload_error(body: str | bytes, fragment: str) -> None:
    with pytest.raises(AlertPayloadError) as info:
        parse_alert_payload(body)
    assert fragment in str(info.value)


@pytest.mark.parametrize("body", [None, 42, {"alerts": []}])
def test_body_of_wrong_type(body: object) -> None:
    with pytest.raises(AlertPayloadError, match="body must be bytes or str"):
        parse_alert_payload(body)  # type: ignore[arg-type]


def test_body_size_limit() -> None:
    base = _am(_alert())
    at_limit = base + " " * (MAX_BODY_BYTES - len(base))
    assert len(parse_alert_payload(at_limit.encode())) == 1
    assert len(parse_alert_payload(bytearray(at_limit.encode()))) == 1
    huge = _am(_alert(annotations={"description": "x" * MAX_BODY_BYTES}))
    for body in (huge, huge.encode()):
        with pytest.raises(AlertPayloadError, match="body is too large"):
            parse_alert_payload(body)
    # Multi-byte characters count as bytes, not characters.
    wide = base + " " * (MAX_BODY_BYTES - len(base) - 1) + "é"
    with pytest.raises(AlertPayloadError, match="body is too large"):
        parse_alert_payload(wide)


def test_payload_error_is_a_value_error() -> None:
    assert issubclass(AlertPayloadError, ValueError)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_stamp = st.sampled_from(["", "0001-01-01T00:00:00Z", "2024-01-01T00:00:00.1234567891Z", "2024-02-30T00:00:00Z"])
_fuzz_alert = st.fixed_dictionaries({}, optional={
    "status": st.sampled_from(["firing", "resolved", "ok"]) | _json,
    "labels": st.dictionaries(st.sampled_from(["alertname", "severity", "team", "service"]), st.text(max_size=8))
    | _json,
    "annotations": st.dictionaries(st.sampled_from(["summary", "description"]), st.text()) | _json,
    "startsAt": _stamp | _json,
    "endsAt": _stamp | _json,
    "fingerprint": st.text(max_size=8) | _json,
    "generatorURL": st.text(max_size=8) | _json,
    "values": st.dictionaries(st.text(max_size=3), st.floats() | st.integers()) | _json,
})
_fuzz_body = st.fixed_dictionaries({}, optional={
    "version": st.sampled_from(["4", "1", 4]),
    "receiver": st.text(max_size=5),
    "orgId": st.integers(),
    "title": _json,
    "status": st.sampled_from(["firing", "resolved"]) | _json,
    "alerts": st.lists(_fuzz_alert | _json, max_size=3) | _json,
})


@settings(max_examples=300, deadline=None)
@given(_fuzz_body)
def test_structured_garbage_only_raises_payload_error(body: dict) -> None:
    try:
        alerts = parse_alert_payload(json.dumps(body))
    except AlertPayloadError:
        return
    for alert in alerts:
        _check_invariants(alert)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes_only_raise_payload_error(body: bytes | str) -> None:
    try:
        parse_alert_payload(body)
    except AlertPayloadError:
        pass


def test_module_uses_standard_library_only() -> None:
    tree = ast.parse((PROJECT_ROOT / "lib" / "alerts" / "parse.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
