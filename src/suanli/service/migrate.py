"""Schema migrations (Alembic, shipped in the package): upgrade and the start-up check."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from suanli.errors import SuanliError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config(engine: Engine):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def head_revision(engine: Engine) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config(engine)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except DBAPIError as exc:
        url = engine.url.render_as_string(hide_password=True)
        first = str(exc.orig or exc).strip().splitlines()[0]
        raise SuanliError(f"cannot use database {url}: {first}", field="database") from None


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the schema to ``revision``; returns (before, after)."""
    from alembic import command

    before = current_revision(engine)  # also: a clear error when the database is unreachable
    cfg = _config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return before, current_revision(engine) or ""


def check_schema(engine: Engine) -> str:
    """Refuse to serve an old (or unknown) schema, naming the command that fixes it."""
    cur = current_revision(engine)
    head = head_revision(engine)
    url = engine.url.render_as_string(hide_password=True)
    if cur is None:
        raise SuanliError(
            f"database {url} has no suanli schema; run `suanli db upgrade` first",
            field="database")
    if cur != head:
        raise SuanliError(
            f"database schema is at revision {cur}, this suanli needs {head}; "
            "run `suanli db upgrade`", field="database")
    return cur
