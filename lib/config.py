"""Settings from the environment and `.streamlit/secrets.toml`.

Every setting has an environment variable (``HELPDESK_<NAME>``) and a key of the same name
(lower case) in ``.streamlit/secrets.toml`` under ``[helpdesk]``; the environment wins.
Nothing here imports streamlit, so the CLI, the worker and the tests read the same values.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_PATH = ROOT / "data" / "helpdesk.sqlite3"
SECRETS_FILE = ROOT / ".streamlit" / "secrets.toml"
# A cookie key generated on first run lives here: outside git (see .gitignore), never in code.
GENERATED_SECRETS_FILE = ROOT / "data" / "generated_secrets.toml"


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return {}
    section = data.get("helpdesk", {})
    return section if isinstance(section, dict) else {}


@dataclass(frozen=True)
class Settings:
    database_url: str
    timezone: str = "Europe/London"
    ticket_prefix: str = "HD"
    reopen_window_days: int = 14
    confirmation_wait_days: int = 5
    attachment_max_bytes: int = 10 * 1024 * 1024
    attachment_dir: str | None = None
    queue_refresh_seconds: int = 30
    cookie_name: str = "helpdesk_auth"
    cookie_expiry_days: float = 7.0
    login_max_failures: int = 5
    login_lockout_minutes: int = 15
    extra: dict = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _get(env: dict[str, str], toml: dict, name: str, default: object = None) -> object:
    env_name = f"HELPDESK_{name.upper()}"
    if env_name in env and env[env_name] != "":
        return env[env_name]
    return toml.get(name, default)


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings now (no cache): environment first, then secrets.toml, then defaults."""
    env = dict(os.environ) if env is None else env
    toml = _read_toml(SECRETS_FILE)
    url = str(_get(env, toml, "database_url", "") or f"sqlite:///{DEFAULT_DB_PATH}")
    known = {
        "timezone": str,
        "ticket_prefix": str,
        "reopen_window_days": int,
        "confirmation_wait_days": int,
        "attachment_max_bytes": int,
        "attachment_dir": str,
        "queue_refresh_seconds": int,
        "cookie_name": str,
        "cookie_expiry_days": float,
        "login_max_failures": int,
        "login_lockout_minutes": int,
    }
    kwargs: dict[str, object] = {}
    for name, typ in known.items():
        value = _get(env, toml, name)
        if value is not None:
            try:
                kwargs[name] = typ(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"setting {name} (HELPDESK_{name.upper()}): {value!r} is not a valid {typ.__name__}") from exc
    extra = {k: v for k, v in toml.items() if k not in known and k != "database_url"}
    return Settings(database_url=url, extra=extra, **kwargs)  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def get_secret(name: str, *, generate: bool = False, nbytes: int = 48) -> str | None:
    """A secret from the environment, secrets.toml or the generated file.

    With ``generate=True`` a missing secret is created once, stored in ``data/generated_secrets.toml``
    (git-ignored, mode 0600) and returned the same ever after.
    """
    env_name = f"HELPDESK_{name.upper()}"
    if os.environ.get(env_name):
        return os.environ[env_name]
    value = _read_toml(SECRETS_FILE).get(name) or _read_toml(GENERATED_SECRETS_FILE).get(name)
    if value or not generate:
        return str(value) if value else None
    GENERATED_SECRETS_FILE.parent.mkdir(parents=True, exist_ok=True)
    lock_path = GENERATED_SECRETS_FILE.with_suffix(".lock")
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two app servers starting at once agree on one key
        existing = _read_toml(GENERATED_SECRETS_FILE)
        if not existing.get(name):
            existing[name] = secrets.token_urlsafe(nbytes)
            lines = ["[helpdesk]"] + [f'{k} = "{v}"' for k, v in existing.items()]
            tmp = GENERATED_SECRETS_FILE.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write("\n".join(lines) + "\n")
            os.replace(tmp, GENERATED_SECRETS_FILE)
        return str(existing[name])
