"""One settings object: every documented setting is read from the environment alone, checked, documented
in one table, and used by the product."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from lib import config
from lib.config import FIELDS, Settings, env_name, load_settings

ROOT = Path(__file__).resolve().parents[2]
HINTS = typing.get_type_hints(Settings)


def _changed_value(f: dataclasses.Field) -> tuple[str, object]:
    """A value different from the default, as the environment writes it, and as the setting should read it."""
    hint, name = HINTS[f.name], f.name
    base = config._base(hint)
    if name == "timezone":
        return "America/New_York", "America/New_York"
    if name == "ticket_prefix":
        return "IT", "IT"
    if name == "spam_mail":
        return "ticket", "ticket"
    if name == "staff_mail_default":
        return "each", "each"
    if name in ("public_url", "database_url"):
        return "https://desk.example.com", "https://desk.example.com"
    if base is bool:
        default = f.default
        return ("no", False) if default else ("yes", True)
    if base is int:
        return "7", 7
    if base is float:
        return "2.5", 2.5
    if base is tuple:
        return "a@example.com, b@example.com", ("a@example.com", "b@example.com")
    if base is dict:
        return "warning=low, sev1=critical", {"warning": "low", "sev1": "critical"}
    return f"value-of-{name}", f"value-of-{name}"


@pytest.mark.parametrize("f", FIELDS, ids=[f.name for f in FIELDS])
def test_every_setting_is_read_from_the_environment_alone(f: dataclasses.Field) -> None:
    raw, expected = _changed_value(f)
    settings = load_settings({env_name(f.name): raw}, toml={})
    assert getattr(settings, f.name) == expected
    assert getattr(settings, f.name) != getattr(load_settings({}, toml={}), f.name)


@pytest.mark.parametrize("f", FIELDS, ids=[f.name for f in FIELDS])
def test_environment_then_secrets_file_then_default_for_every_key(f: dataclasses.Field) -> None:
    raw, expected = _changed_value(f)
    from_file = load_settings({}, toml={f.name: raw})
    assert getattr(from_file, f.name) == expected
    if config._base(HINTS[f.name]) is str:
        both = load_settings({env_name(f.name): raw}, toml={f.name: "from-the-file"})
        assert getattr(both, f.name) == expected  # the environment wins
    empty = load_settings({env_name(f.name): ""}, toml={f.name: raw})
    assert getattr(empty, f.name) == expected  # an empty variable counts as unset


@pytest.mark.parametrize(("name", "value", "says"), [
    ("login_max_failures", "five", "is not a whole number"),
    ("session_lifetime_hours", "a week", "is not a whole number"),
    ("alert_auto_resolve", "maybe", "is not yes or no"),
    ("alert_severity_map", "warning", "key=value"),
    ("timezone", "Mars/Olympus", "is not a time zone"),
    ("ticket_prefix", "H D", "letters and digits"),
    ("public_url", "desk.example.com", "is not an address"),
    ("queue_refresh_seconds", "-1", "must not be negative"),
])
def test_a_bad_value_is_refused_naming_the_setting_and_its_form(name: str, value: str, says: str) -> None:
    with pytest.raises(ValueError) as err:
        load_settings({env_name(name): value}, toml={})
    assert f"setting {name} ({env_name(name)})" in str(err.value) and says in str(err.value)


def test_the_configuration_doc_is_generated_from_the_settings() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert doc == config.markdown(), "docs/configuration.md is stale: run python -m lib.config"
    for f in FIELDS:
        assert f"`{env_name(f.name)}`" in doc


def test_one_table_the_readme_and_the_other_docs_point_to_it() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/configuration.md" in readme
    names = {f.name for f in FIELDS} | {env_name(f.name) for f in FIELDS}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        if path.name == "configuration.md":
            continue
        rows = [line for line in path.read_text(encoding="utf-8").splitlines()
                if (m := re.match(r"^\|\s*`([A-Za-z_]+)`", line)) and m.group(1) in names]
        assert not rows, f"{path.name} has a settings table of its own: {rows[:2]}"


def test_every_setting_is_used_by_the_product() -> None:
    """A documented setting that nothing reads would be a promise the product does not keep."""
    sources = "\n".join(p.read_text(encoding="utf-8") for folder in ("lib", "pages")
                        for p in sorted((ROOT / folder).rglob("*.py")) if p.name != "config.py")
    sources += (ROOT / "app.py").read_text(encoding="utf-8")
    unused = [f.name for f in FIELDS
              if not re.search(rf"\.{f.name}\b|get_secret\(\"{f.name}\"", sources)]
    assert not unused, f"settings nothing reads: {unused}"


def test_no_ticket_number_form_but_the_configured_one() -> None:
    """Ticket numbers are made by models.ticket_ref alone, from the ticket_prefix setting."""
    offenders = []
    for folder in ("lib", "pages"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "config.py":  # the setting's default lives there, once
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if re.search(r"""f["']HD-|["']HD["']""", code):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, offenders
