"""Batched inserts that cost one parameter per statement instead of one per value.

A batch of replays is sent to Postgres as ONE JSON array (serialised by orjson) and
expanded server-side with ``jsonb_to_recordset``. Why not SQLAlchemy's multi-row
``VALUES`` (insertmanyvalues): for 64 replays x 15 columns it binds ~1,000 parameters,
and converting, dumping and splitting them is Python work on the worker that cost
more CPU than the model call (~0.3 ms per replay). Here the statement text is fixed
(psycopg caches its parse), the rows are dumped by orjson in C and the parsing happens
in Postgres, also in C. COPY would be as cheap but cannot say ``ON CONFLICT DO NOTHING
RETURNING`` without a staging table.

The recordset's column types are taken from the table definitions in models.py, so
the statement follows the schema (the migrations drift test guards the schema).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql

from shadowcanary.store.db import json_for_postgres

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
# A JSON-escaped NUL not itself escaped: jsonb rejects NUL, Postgres text cannot hold it.
_ESCAPED_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def rows_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as one JSON array Postgres accepts (NUL becomes U+FFFD, as clean_text does).

    orjson writes datetimes as RFC 3339 (read back exactly by timestamptz) and NaN or
    infinity as null.
    """
    try:
        encoded = orjson.dumps(rows, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        # Lone surrogates in model output or integers past 64 bits: the slow path that
        # replaces what jsonb refuses (rows hold datetimes only at the top level).
        return json_for_postgres(
            [
                {k: v.isoformat() if isinstance(v, datetime) else v for k, v in r.items()}
                for r in rows
            ]
        )
    if b"\\u0000" in encoded:
        encoded = _ESCAPED_NUL.sub(rb"\1\\ufffd", encoded)
    return encoded.decode()


def _recordset(table: Table, columns: Sequence[str]) -> str:
    """``jsonb_to_recordset`` of the one JSON parameter, typed by ``table``'s columns."""
    # Every name is a column of ``table`` (``table.c[c]`` raises otherwise): no data
    # ever reaches the statement text, only the one JSON parameter.
    types = ", ".join(f"{c} {table.c[c].type.compile(dialect=_DIALECT)}" for c in columns)
    return f"jsonb_to_recordset(%s::jsonb) AS r({types})"


@functools.cache
def _insert_sql(
    table: Table, columns: tuple[str, ...], conflict: tuple[str, ...], returning: tuple[str, ...]
) -> str:
    names = ", ".join(columns)
    sql = (
        f"INSERT INTO {table.name} ({names}) "  # noqa: S608 - identifiers from the table
        f"SELECT {names} FROM {_recordset(table, columns)} "
        f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    )
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    return sql


def insert_new(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    conflict: Sequence[str],
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """INSERT ``rows`` (all with the same keys), skipping conflicts; the new rows' ``returning``.

    Rows are inserted in the order given: sort them by key so concurrent writers take
    their locks in one order.
    """
    if not rows:
        return []
    sql = _insert_sql(table, tuple(rows[0]), tuple(conflict), tuple(returning))
    result = conn.exec_driver_sql(sql, (rows_json(rows),))
    return [tuple(row) for row in result] if returning else []


@functools.cache
def _add_sql(
    table: Table,
    columns: tuple[str, ...],
    keys: tuple[str, ...],
    insert_only: tuple[str, ...],
    returning: tuple[str, ...],
) -> str:
    names = ", ".join(columns)
    added = ", ".join(
        f"{c} = {table.name}.{c} + excluded.{c}"
        for c in columns
        if c not in keys and c not in insert_only
    )
    sql = (
        f"INSERT INTO {table.name} ({names}) "  # noqa: S608 - identifiers from the table
        f"SELECT {names} FROM {_recordset(table, columns)} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {added}"
    )
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    return sql


def upsert_add(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str],
    insert_only: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Insert counter rows, or add their values to the existing rows with the same ``keys``.

    Columns in ``insert_only`` are written when the row is new and left alone
    otherwise. ``returning`` columns are read back from every row touched, as it is
    after the statement (which leaves it locked until commit). Give the rows sorted by
    key: the row locks are taken in that order.
    """
    if not rows:
        return []
    sql = _add_sql(table, tuple(rows[0]), tuple(keys), tuple(insert_only), tuple(returning))
    result = conn.exec_driver_sql(sql, (rows_json(rows),))
    return [tuple(row) for row in result] if returning else []


@functools.cache
def _update_sql(table: Table, columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
    assigned = ", ".join(f"{c} = r.{c}" for c in columns if c not in keys)
    matched = " AND ".join(f"{table.name}.{k} = r.{k}" for k in keys)
    return (
        f"UPDATE {table.name} SET {assigned} "  # noqa: S608 - identifiers from the table
        f"FROM {_recordset(table, columns)} WHERE {matched}"
    )


def update_by_key(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *, keys: Sequence[str]
) -> None:
    """Set the other columns of the existing rows matching each row's ``keys``."""
    if rows:
        conn.exec_driver_sql(_update_sql(table, tuple(rows[0]), tuple(keys)), (rows_json(rows),))
