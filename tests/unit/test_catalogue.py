"""The InfluxQL catalogue: the only module of the project's code that holds statement text,
each of its functions quoting what it is given and saying what built its statement."""

from __future__ import annotations

import ast
import inspect
import re
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from federation.core import influxql
from federation.core import influxql_ast as tree
from federation.core.durations import Duration
from federation.core.influxql import CATALOGUE, Statement, TimeRange
from tests.hostile import HOSTILE

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("federation", "ingest", "alerts", "bench")
CATALOGUE_MODULE = Path(influxql.__file__).resolve()
# The alerts database's own module speaks SQL (a schema migration), not InfluxQL.
SQL_MODULES = {ROOT / "alerts" / "store.py"}

# A statement's head in any case (``select ... from``, ``show series``, ...), or a
# keyword in InfluxQL's capitals followed by more of a statement.
_HEADS = (
    r"select\b.*\bfrom",
    r"show\s+(series|tag|field|measurements?|databases|retention|users|grants|shards|stats"
    r"|diagnostics|queries|continuous|subscriptions)\b",
    r"delete\s+from\b",
    r"drop\s+(database|series|measurement|retention|user|continuous|subscription|shard)\b",
    r"create\s+(database|retention|user|continuous|subscription)\b",
    r"alter\s+retention\b",
    r"grant\s+\w+.*\bto\b",
    r"revoke\s+\w+.*\bfrom\b",
)
STATEMENT = re.compile(
    r"(?is)\b(" + "|".join(_HEADS) + r")"
    r"|(?-i:\b(SELECT|SHOW|DELETE|DROP|CREATE|ALTER|GRANT|REVOKE)\s+\S)"
)


def _docstrings(tree: ast.AST) -> set[int]:
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, kinds)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
        and isinstance(node.body[0].value.value, str)
    }


def _text(node: ast.AST, used: set[int]) -> str | None:
    """The text a string expression builds, ``{}`` for what is computed; None if
    ``node`` is no string. Nodes taken into a text are added to ``used``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        used.add(id(node))
        return node.value
    if isinstance(node, ast.JoinedStr):  # an f-string: its literal parts, and {} between
        used.add(id(node))
        return "".join(_text(v, used) or "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left, used), _text(node.right, used)
        if left is None and right is None:
            return None
        used.add(id(node))
        return (left if left is not None else "{}") + (right if right is not None else "{}")
    return None


def statement_texts(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every string in ``source`` that looks like InfluxQL, docstrings
    left out; f-strings and ``+`` concatenations are read whole."""
    tree = ast.parse(source)
    used = _docstrings(tree)
    for node in ast.walk(tree):  # parents before children: a whole before its parts
        if id(node) in used:
            continue
        text = _text(node, used)
        if text is not None and STATEMENT.search(text):
            yield node.lineno, text  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "snippet",
    [
        'q = "SELECT \\"price\\" FROM \\"price\\""',
        'q = f"SELECT COUNT({x}) FROM {m} WHERE {w}"',
        'q = "SELECT " + fields + " FROM " + m',
        'q = f"DELETE FROM {m}" + where',
        "q = 'select mean(price) from price'",
        'run(f"SHOW TAG VALUES FROM {m} WITH KEY = {k}")',
        'q = "DROP DATABASE " + name',
        'q = f"{a}; CREATE DATABASE {b}"',
        'def f():\n    return f"GRANT ALL ON {db} TO {user}"',
    ],
    ids=[
        "literal",
        "f-string",
        "concatenation",
        "f-string-plus",
        "lower-case",
        "argument",
        "drop",
        "second-statement",
        "in-function",
    ],
)
def test_statement_texts_finds_influxql(snippet: str) -> None:
    assert [line for line, _ in statement_texts(snippet)] == [snippet.count("\n") + 1]


@pytest.mark.parametrize(
    "snippet",
    [
        'def f():\n    """SELECT "price" FROM "price" is what this asks."""',
        'Route("/alerts/{id}", delete, methods=["DELETE"])',
        'log.info("show the shards: %s", shards)',
        'raise ValueError(f"cannot select {x}")',
    ],
    ids=["docstring", "http-method", "log-message", "message"],
)
def test_statement_texts_leaves_other_strings(snippet: str) -> None:
    assert list(statement_texts(snippet)) == []


def test_only_the_catalogue_holds_influxql() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.resolve() != CATALOGUE_MODULE and path not in SQL_MODULES
        for line, text in statement_texts(path.read_text())
    ]
    assert found == []


# Quoting: every catalogue function, its string arguments hostile.

BENIGN = "abc"
NUMBER = 1_700_000_000_000


def _literals(text: str) -> tuple[str, list[str]]:
    """``text`` with every quoted string or identifier replaced by ``?``, and their
    contents unescaped, as InfluxQL's scanner reads them."""
    skeleton: list[str] = []
    contents: list[str] = []
    i = 0
    while i < len(text):
        quote = text[i]
        if quote not in "'\"":
            skeleton.append(quote)
            i += 1
            continue
        value: list[str] = []
        i += 1
        while text[i] != quote:
            if text[i] == "\\":
                i += 1
                value.append("\n" if text[i] == "n" else text[i])
            else:
                value.append(text[i])
            i += 1
        i += 1
        skeleton.append(quote + "?" + quote)
        contents.append("".join(value))
    return "".join(skeleton), contents


def _select(text: str) -> tree.Select:
    """A front-door SELECT whose field, measurement, tag and value are all ``text``."""
    condition = tree.Binary("=", tree.VarRef(text), tree.StringLit(text))
    return tree.Select(
        (tree.Field(tree.Call("mean", (tree.VarRef(text),)), text),),
        (tree.Measurement(text),),
        condition,
        (tree.VarRef(text),),
    )


def _arguments(
    build: Callable[..., Statement], text: str, number: object = NUMBER
) -> dict[str, object]:
    """Arguments for ``build``: ``text`` for every string (in a front-door tree too),
    ``number`` for every time or count (in a TimeRange too), plain values for the rest."""
    examples: dict[object, object] = {
        int: number,
        bool: True,
        Duration: Duration(1, "h"),
        TimeRange: TimeRange(number, number),  # type: ignore[arg-type]
        tuple[int, ...]: (number,),
        tree.Select: _select(text),
        tuple[tree.Select, ...]: (_select(text), _select(text)),
        tree.Show: tree.Show(
            "tag values",
            (tree.Measurement(text),),
            tree.Binary("!=", tree.VarRef(text), tree.StringLit(text)),
            "=",
            (text,),
        ),
    }
    hints = typing.get_type_hints(inspect.unwrap(build))
    hints.pop("return")
    out: dict[str, object] = {}
    for name, hint in hints.items():
        if hint in examples:
            out[name] = examples[hint]
            continue
        kinds = set(typing.get_args(hint)) - {type(None)} or {hint}
        out[name] = text if str in kinds else examples[kinds.pop()]
    return out


WITH_TEXT = sorted(
    k for k, build in CATALOGUE.items() if _arguments(build, BENIGN) != _arguments(build, "x")
)


@pytest.mark.parametrize("hostile", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("kind", WITH_TEXT)
def test_catalogue_quotes_hostile_values_whole(kind: str, hostile: str) -> None:
    build = CATALOGUE[kind]
    plain = _literals(build(**_arguments(build, BENIGN)).text)
    quoted = _literals(build(**_arguments(build, hostile)).text)
    assert quoted[0] == plain[0]  # the same statement: nothing leaked out of its quotes
    assert [hostile if c == BENIGN else c for c in plain[1]] == quoted[1]


@pytest.mark.parametrize("kind", sorted(CATALOGUE))
def test_catalogue_statement_names_its_kind_and_arguments(kind: str) -> None:
    build = CATALOGUE[kind]
    arguments = _arguments(build, BENIGN)
    statement = build(**arguments)
    assert (statement.kind, dict(statement.args)) == (kind, arguments)


WITH_NUMBER = sorted(
    k for k, build in CATALOGUE.items() if _arguments(build, BENIGN) != _arguments(build, BENIGN, 0)
)


@pytest.mark.parametrize("kind", WITH_NUMBER)
def test_catalogue_refuses_text_where_it_writes_a_number(kind: str) -> None:
    build = CATALOGUE[kind]
    with pytest.raises(ValueError, match="invalid literal for int"):
        build(**_arguments(build, BENIGN, number="1; DROP DATABASE crypto"))


def test_catalogue_refuses_control_characters_in_values() -> None:
    with pytest.raises(ValueError, match="control characters"):
        influxql.series_of_pair_query("a\x00b")
