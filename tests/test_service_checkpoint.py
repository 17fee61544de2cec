"""SQLite under a server: commits never checkpoint (the engine turns SQLite's automatic
checkpoint off), a background thread does, so the write-ahead log is copied back and
reused instead of growing with every write."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from suanli.service.db import WalCheckpointer, make_engine


def _write(engine: object, rows: int, commits: int) -> None:
    for c in range(commits):
        with engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(text("INSERT INTO t (v) VALUES (:v)"),
                         [{"v": "x" * 500 + str(c * rows + i)} for i in range(rows)])




def test_commits_do_not_checkpoint_the_thread_does(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    engine = make_engine(f"sqlite:///{db}", background_checkpoint=True)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    wal = Path(str(db) + "-wal")
    _write(engine, 100, 60)  # ~6,000 rows of ~0.5 kB: ~800 pages of 4 kB, then more
    _write(engine, 100, 60)
    grown = wal.stat().st_size
    assert grown > 1500 * 4096  # past SQLite's 1,000-page automatic checkpoint: none ran
    cp = WalCheckpointer(engine, every_s=0.05)
    cp.start()
    try:
        deadline = time.monotonic() + 10
        while cp.checkpoints < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cp.checkpoints >= 2
        busy, log_pages, done = cp.checkpoint()
        assert busy == 0 and log_pages == done  # everything copied back
        # the log is reused from its start: more writes do not grow the file
        for _ in range(5):
            _write(engine, 100, 20)
            time.sleep(0.15)
        assert wal.stat().st_size <= grown
    finally:
        cp.stop()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 22_000
    engine.dispose()


def test_default_engine_keeps_automatic_checkpoints(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    engine = make_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    _write(engine, 100, 120)
    # the log was checkpointed and reused by commits: it never held all 12,000 rows
    assert Path(str(db) + "-wal").stat().st_size < 1500 * 4096
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 1000
    engine.dispose()


def test_checkpointer_is_a_no_op_elsewhere() -> None:
    engine = make_engine("postgresql+psycopg://u@127.0.0.1:1/x")  # never connected
    cp = WalCheckpointer(engine)
    cp.start()
    assert cp._thread is None
    cp.stop()
