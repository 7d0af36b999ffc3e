"""Alembic environment: batch mode (SQLite-safe ALTERs), URL from the caller or NOTIFY_*."""

from alembic import context
from sqlalchemy import Connection

from notify import partitions
from notify.db import make_engine
from notify.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    """Run the migrations on ``connection``.

    On SQLite, batch mode rebuilds a table to change it (copy, drop, rename). With foreign
    keys enforced, dropping ``campaigns`` would cascade-delete its batches and notifications,
    so enforcement is off while the migrations run (SQLite only allows switching it outside a
    transaction) and the foreign keys are checked before it is switched back on.
    """
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        include_name=partitions.include_name,
    )
    with context.begin_transaction():
        context.run_migrations()
    if sqlite:
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        connection.commit()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()
        if broken:
            raise RuntimeError(f"migrations left {len(broken)} rows with broken foreign keys")


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from notify.config import load_settings_or_exit

        url = load_settings_or_exit().database_url
    engine = make_engine(url)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
