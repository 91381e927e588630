"""The front door's InfluxQL parser and the catalogue's rendering of its trees: hostile
names and strings survive a round trip whole, precedence and units are InfluxDB's, and
errors are worded as influxd words them (its answers, recorded from influxd 1.6)."""

from __future__ import annotations

import pytest

from federation.core import influxql
from federation.core import influxql_ast as tree
from federation.core.influxql_parser import parse_query
from federation.core.influxql_scanner import ParseError, parse_duration
from tests.hostile import HOSTILE


def _one(text: str) -> tree.Statement:
    statements = parse_query(text).statements
    assert len(statements) == 1
    return statements[0]


def _hostile_select(text: str) -> tree.Select:
    condition = tree.Binary(
        "OR",
        tree.Binary("=", tree.VarRef(text), tree.StringLit(text)),
        tree.Binary("=~", tree.VarRef("pair"), tree.RegexLit(text)),
    )
    return tree.Select(
        (tree.Field(tree.Call("max", (tree.VarRef(text),)), text),),
        (tree.Measurement(text, database=text, policy=text),),
        condition,
        (tree.TimeDimension(60_000_000_000), tree.VarRef(text)),
        "number",
        -1.5,
        True,
        3,
        1,
    )


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_select_round_trips_hostile_text_whole(text: str) -> None:
    select = _hostile_select(text)
    assert _one(influxql.front_select(select).text) == select


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_show_round_trips_hostile_text_whole(text: str) -> None:
    show = tree.Show(
        "tag values",
        (tree.Measurement(text),),
        tree.Binary("!=", tree.VarRef(text), tree.StringLit(text)),
        "IN",
        (text, "pair"),
        limit=2,
    )
    assert _one(influxql.front_show(show).text) == show


def test_selects_render_one_statement_each() -> None:
    select = _hostile_select("x")
    assert parse_query(influxql.front_selects((select, select)).text).statements == [select] * 2


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1ns", 1),
        ("5u", 5_000),
        ("250ms", 250_000_000),
        ("90s", 90 * 10**9),
        ("2w", 14 * 86_400 * 10**9),
    ],
    ids=["ns", "u", "ms", "s", "w"],
)
def test_duration_literals_in_influxdbs_units(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


def test_and_binds_tighter_than_or() -> None:
    select = _one("SELECT v FROM m WHERE a = 'x' OR b = 'y' AND c = 'z'")
    assert isinstance(select, tree.Select)
    assert select.condition == tree.Binary(
        "OR",
        tree.Binary("=", tree.VarRef("a"), tree.StringLit("x")),
        tree.Binary(
            "AND",
            tree.Binary("=", tree.VarRef("b"), tree.StringLit("y")),
            tree.Binary("=", tree.VarRef("c"), tree.StringLit("z")),
        ),
    )


def test_bind_parameter_becomes_a_literal_never_text() -> None:
    hostile = "x' OR ''='"
    select = parse_query("SELECT v FROM m WHERE pair = $p", {"p": hostile}).statements[0]
    assert isinstance(select, tree.Select)
    assert select.condition == tree.Binary("=", tree.VarRef("pair"), tree.StringLit(hostile))


def test_grafana_query_reads_whole() -> None:
    text = (
        'SELECT mean("price") FROM "price" WHERE time >= 1700000000000ms and'
        ' time <= 1700003600000ms GROUP BY time(1m, -30s), "exchange" fill(null)'
    )
    select = _one(text)
    assert isinstance(select, tree.Select)
    assert select.dimensions == (
        tree.TimeDimension(60 * 10**9, -30 * 10**9),
        tree.VarRef("exchange"),
    )


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("DROP MEASUREMENT price", "DROP MEASUREMENT"),
        ("ALTER RETENTION POLICY autogen ON crypto DEFAULT", "ALTER RETENTION"),
        ("create user bob with password 'x'", "CREATE USER"),
        ("SHOW USERS", "SHOW USERS"),
    ],
    ids=["drop", "alter", "create-user", "show-users"],
)
def test_statements_that_change_things_are_named_refused(text: str, what: str) -> None:
    assert _one(text) == tree.Refused(what)


# Errors as influxd 1.6 answered the same queries.
@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "SELEC price FROM price",
            "found SELEC, expected SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE,"
            " ALTER, SET, KILL at line 1, char 1",
        ),
        (
            "SELECT price FROM price WHERE pair = 'btcusd",
            "found btcusd, expected identifier, string, number, bool at line 1, char 37",
        ),
        (
            "SELECT price FROM price; SELECT",
            "found EOF, expected identifier, string, number, bool at line 1, char 33",
        ),
    ],
    ids=["keyword", "unterminated-string", "eof"],
)
def test_errors_are_worded_as_influxd_words_them(text: str, error: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse_query(text)
    assert str(raised.value) == error


def test_missing_bind_parameter_is_named() -> None:
    with pytest.raises(ParseError, match="missing parameter: p"):
        parse_query("SELECT v FROM m WHERE pair = $p")
