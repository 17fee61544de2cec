"""Service and client configuration (pydantic-settings: flags > environment > file > defaults).

Data directory (``$SUANLI_HOME``): the SQLite database, launch directories with logs, the
bootstrap admin token and ``server.json`` (where the running server listens). Default:
``./.suanli`` when it exists in the current directory, else ``~/.local/share/suanli``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    env = os.environ.get("SUANLI_HOME")
    if env:
        return Path(env).expanduser()
    local = Path.cwd() / ".suanli"
    if local.is_dir():
        return local
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "suanli"


class ServiceSettings(BaseSettings):
    """``suanli serve`` settings; every field is also ``SUANLI_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="SUANLI_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///$SUANLI_HOME/suanli.db "
        "(PostgreSQL: postgresql+psycopg://user@host:port/db)",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8477, ge=0, le=65535)
    executor: str = "local"
    policy: str = "max-min"
    round_s: float = Field(default=60.0, gt=0)
    interval_s: float = Field(default=0.5, gt=0, description="scheduler pass period")
    round_slice_us: float = Field(
        default=10_000.0, gt=0, allow_inf_nan=False,
        description="work per scheduler pass while a preemptive policy's round is under way "
        "(estimated microseconds; the round continues in the next passes, run back to back; "
        "a huge value runs every round in one pass)")
    grace_s: float = Field(default=10.0, ge=0, description="SIGTERM -> SIGKILL grace")
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_batch: int = Field(default=10_000, ge=1)
    scheduler: bool = Field(default=True, description="run the scheduler loop in this process")
    fleet: Path | None = None
    agent_heartbeat_s: float = Field(default=5.0, gt=0, le=3600,
                                     description="heartbeat period told to node agents")
    agent_lost_after: int = Field(default=3, ge=1, le=1000,
                                  description="missed heartbeats before a node is lost")

    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'suanli.db'}"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"


class ClientSettings(BaseSettings):
    """Client: ``--url``/``--token`` flags, ``SUANLI_URL``/``SUANLI_TOKEN``, the config file
    ``$SUANLI_CONFIG`` (default ``~/.config/suanli/client.json``), then a local server's
    ``$SUANLI_HOME/server.json`` and ``admin.token``."""

    model_config = SettingsConfigDict(env_prefix="SUANLI_", extra="ignore")

    url: str | None = None
    token: str | None = None
    timeout_s: float = 30.0

    def resolved(self) -> tuple[str, str | None]:
        url, token = self.url, self.token
        cfg = Path(os.environ.get("SUANLI_CONFIG", "~/.config/suanli/client.json")).expanduser()
        for source in (cfg, default_home() / "server.json"):
            data = _read_json(source)
            url = url or data.get("url")
            token = token or data.get("token")
        if token is None:
            tok = default_home() / "admin.token"
            if tok.is_file():
                token = tok.read_text(encoding="utf-8").strip() or None
        return (url or "http://127.0.0.1:8477").rstrip("/"), token


def _read_json(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}
