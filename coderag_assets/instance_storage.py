"""The Dagster instance's storage: Dagster's own SQLite storage, with event writes that keep
their database connection.

`dagster.yaml` names :class:`CodeRagSqliteStorage` (`storage: custom:`). It is Dagster's
`DagsterSqliteStorage` with the same files in the same places (`history/runs.db`,
`history/runs/<run_id>.db`, `history/runs/index.db`, `schedules/`), so an instance written by
the stock storage keeps working, and the webserver and daemon read what the CLI wrote.

What differs is how the event log connects. The stock `SqliteEventLogStorage` creates an engine,
opens a connection and closes it again for **every event**, twice for asset events (the run's
database and the cross-run index). In WAL mode the last connection to close checkpoints the
write-ahead log into the database and deletes it, so each event paid two file syncs, a
checkpoint and a schema read: about 11 ms here, 3.8 s of a 17 s cold index of a small
repository (347 events) and about 1 s of a one-file edit (61 events). Here each database keeps
one open connection (at most `OPEN_EVENT_DATABASES` of them, least recently used closed first),
so an event is one insert and one commit. A new run's database is a copy of an empty one
with the current schema instead of being made table by table (0.2-0.4 s per run here). Because the write then stays in the write-ahead log,
each stored event also bumps the run database's mtime: Dagster's event watchers (the UI's live
run page) react to modifications of that file. Commits use `synchronous=NORMAL`, SQLite's
recommended setting for WAL: a crash of the process loses nothing, a power cut may lose the
last events, never the database's consistency (the index's own files are written and published
separately, see `store`).
"""

from __future__ import annotations

import os
import shutil
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from alembic.script import ScriptDirectory
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import get_alembic_config
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

RUN_TEMPLATE_PREFIX = "coderag-run-template-"
"""An empty run database with the current schema, beside the runs' databases (not `*.db`,
which Dagster takes for runs)."""
OPEN_EVENT_DATABASES = 4
"""Event databases a process keeps open: the cross-run index and the few runs it writes
(`coderag watch` starts a run per update; older runs' connections are closed)."""


def _set_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _forget_in_child(storage: PooledSqliteEventLogStorage | None) -> None:
    if storage is None:
        return
    for engine in storage._engines.values():
        engine.dispose(close=False)
    storage._engines.clear()
    storage._engines_lock = threading.Lock()


def _dispose_all(engines: OrderedDict[str, Engine], lock: threading.Lock) -> None:
    with lock:
        while engines:
            _, engine = engines.popitem()
            engine.dispose()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` whose databases keep one open connection each (see the module
    docstring). Connections are used under the storage's own lock, one at a time."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        self._template: str | None = None
        super().__init__(base_dir, inst_data=inst_data)
        # Closing the last connection checkpoints a database's write-ahead log: do it when
        # the storage goes away or the process exits.
        weakref.finalize(self, _dispose_all, self._engines, self._engines_lock)
        # A forked child must not use the parent's connections (SQLite forbids it): it drops
        # them unclosed (SQLAlchemy's `dispose(close=False)`) and opens its own.
        this = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget_in_child(this()))

    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            engine = self._engines.get(shard)
            if engine is not None:
                self._engines.move_to_end(shard)
                return engine
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=2,
                connect_args={
                    "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                    # used by one thread at a time (the storage's lock), not always the same one
                    "check_same_thread": False,
                },
            )
            event.listen(engine, "connect", _set_pragmas)
            self._engines[shard] = engine
            while len(self._engines) > OPEN_EVENT_DATABASES:
                _, oldest = self._engines.popitem(last=False)
                oldest.dispose()
            return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                if shard != INDEX_SHARD_NAME:
                    with suppress(OSError):  # e.g. no hard links here: Dagster makes it
                        self._copy_template(shard)
                self._initdb(engine)  # Dagster's: makes a missing schema, else checks it
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _copy_template(self, shard: str) -> None:
        """Give a new run its database as a copy of an empty one with the current schema.

        Making the schema (Dagster's `_initdb`: every table and index, then the alembic stamp,
        each statement synced) took 0.2-0.4 s per run here; a copy takes a millisecond. The
        template is made once per Dagster schema revision (its name holds it), by `_initdb`
        itself, and the copy is still checked by `_initdb` like any existing database."""
        path = self.path_for_shard(shard)
        if os.path.exists(path):
            return
        template = self._template_path()
        if not os.path.exists(template):
            scratch = f"{template}.{os.getpid()}.{threading.get_ident()}.tmp"
            engine = create_engine(f"sqlite:///{scratch}", poolclass=NullPool)
            try:
                self._initdb(engine)
            finally:
                engine.dispose()  # the last connection closed: the WAL is checkpointed
            os.replace(scratch, template)
        scratch = f"{path}.{os.getpid()}.tmp"
        shutil.copyfile(template, scratch)
        try:
            os.link(scratch, path)  # never over a database another process just made
        except FileExistsError:
            pass
        finally:
            os.unlink(scratch)

    def _template_path(self) -> str:
        if self._template is None:
            config = get_alembic_config(sqlite_event_log.__file__)
            head = ScriptDirectory.from_config(config).as_revision_number("head")
            self._template = os.path.join(self._base_dir, f"{RUN_TEMPLATE_PREFIX}{head}.sqlite")
        return self._template

    def store_event(self, event) -> None:
        super().store_event(event)
        # With the connection kept, the write stays in the run database's write-ahead log and
        # the database file itself is not modified; Dagster's event watchers (the UI's live
        # run view) wait for a modification of that file, so say it changed.
        with suppress(OSError):
            os.utime(self.path_for_shard(event.run_id))

    def dispose(self) -> None:
        _dispose_all(self._engines, self._engines_lock)
        super().dispose()

    def wipe(self) -> None:
        with self._engines_lock:
            for shard in list(self._engines):
                if shard != INDEX_SHARD_NAME:
                    self._engines.pop(shard).dispose()
        super().wipe()


class CodeRagSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (same files) with :class:`PooledSqliteEventLogStorage`.

    In `dagster.yaml`::

        storage:
          custom:
            module: coderag_assets.instance_storage
            class: CodeRagSqliteStorage
            config:
              base_dir:
                env: CODERAG_DATA
    """

    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> CodeRagSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)
