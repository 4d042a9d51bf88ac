"""worker/database_gate.py: which failures are the database's, and the probe that decides."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import exc as sqlalchemy_errors

from devstack.ports import free_port
from service.config import DatabaseSettings
from service.database_login import DatabaseLoginRefused
from service.db import create_engine
from worker.database_gate import DatabaseGate, is_database_unavailable


def test_is_database_unavailable_for_refused_logins_lost_connections_and_what_wraps_them() -> None:
    refused = DatabaseLoginRefused("PostgreSQL refused the login of picforge_app (SQLSTATE 28P01)")
    wrapped = sqlalchemy_errors.OperationalError("SELECT 1", {}, ConnectionRefusedError())
    chained = RuntimeError("while recording")
    chained.__cause__ = refused

    for error in (refused, wrapped, chained, asyncpg.CannotConnectNowError("starting up")):
        assert is_database_unavailable(error), error
    for error in (ValueError("corrupt"), KeyError("x"), asyncpg.UniqueViolationError("dup")):
        assert not is_database_unavailable(error), error


async def test_gate_probe_answers_for_a_reachable_database_only(database_url: str) -> None:
    reachable = create_engine(DatabaseSettings(database_url=database_url))
    nowhere = create_engine(
        DatabaseSettings(db_host="127.0.0.1", db_port=free_port(), db_sslmode="disable")
    )
    try:
        assert await DatabaseGate(reachable).probe() is True
        gate = DatabaseGate(nowhere)
        assert await gate.probe() is False
        gate.close()
        assert not gate.is_open
    finally:
        await reachable.dispose()
        await nowhere.dispose()
