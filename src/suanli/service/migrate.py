"""Schema migrations (Alembic, shipped in the package): upgrade and the start-up check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    _run(engine, lambda cfg: command.upgrade(cfg, revision))
    return before, current_revision(engine) or ""


def downgrade(engine: Engine, revision: str) -> str:
    """Take the schema back to ``revision``; returns the revision reached."""
    from alembic import command

    _run(engine, lambda cfg: command.downgrade(cfg, revision))
    return current_revision(engine) or ""


def _run(engine: Engine, step: Any) -> None:
    """One Alembic command in one transaction. SQLite: with its foreign-key enforcement off
    meanwhile (batch mode rebuilds a table by copying it and dropping the original, which
    the references of other tables would refuse; SQLite's documented procedure for schema
    changes), then ``PRAGMA foreign_key_check`` before it is switched on again."""
    cfg = _config(engine)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:  # outside a transaction, where SQLite honours it
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                step(cfg)
                if sqlite:
                    bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if bad:
                        raise SuanliError(f"migration left rows without their referenced "
                                          f"row: {bad[:5]}", field="database")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


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
