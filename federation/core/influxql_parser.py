"""A parser of the InfluxQL subset the front door serves, into
:mod:`federation.core.influxql_ast`, after InfluxDB 1.x's own (influxql's scanner.go
and parser.go): the same tokens, quoting, escapes, precedence and duration units, and
errors worded as InfluxDB words them (``found X, expected Y at line L, char C``).

Statements that change data or schema are read only far enough to be named and
refused; bind parameters (``$name``) are replaced by the values given with the query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from federation.core.influxql_ast import (
    Binary,
    BoolLit,
    Call,
    CreateDatabase,
    Dimension,
    DurationLit,
    Expr,
    Field,
    Fill,
    IntegerLit,
    Measurement,
    NumberLit,
    Query,
    Refused,
    RegexLit,
    Select,
    Show,
    ShowKind,
    Statement,
    StringLit,
    TimeDimension,
    VarRef,
    Wildcard,
)
from federation.core.influxql_scanner import (
    PRECEDENCE,
    STATEMENT_HEADS,
    ParseError,
    Scanner,
    Token,
    parse_duration,
)


class _Parser:
    def __init__(self, text: str, params: Mapping[str, object]) -> None:
        self.scanner = Scanner(text)
        self.params = params
        self.buffer: list[Token] = []

    def peek(self) -> Token:
        if not self.buffer:
            self.buffer.append(self.scanner.token())
        return self.buffer[0]

    def next(self) -> Token:
        token = self.peek()
        self.buffer.pop(0)
        return token

    def fail(self, token: Token, expected: str) -> ParseError:
        return ParseError(
            f"found {token.text}, expected {expected} at {self.scanner.where(token.pos)}"
        )

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token.kind == "KEYWORD" and token.text in words:
            self.next()
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise self.fail(self.peek(), word)

    def op(self, *ops: str) -> str | None:
        token = self.peek()
        if token.kind == "OP" and token.text in ops:
            self.next()
            return token.text
        return None

    def expect_op(self, op: str) -> None:
        if not self.op(op):
            raise self.fail(self.peek(), op)

    def ident(self) -> str:
        token = self.next()
        if token.kind == "IDENT":
            return token.text
        if token.kind == "PARAM":
            value = self._param(token)
            if isinstance(value, str):
                return value
        raise self.fail(token, "identifier")

    def integer(self) -> int:
        token = self.next()
        if token.kind != "INTEGER":
            raise self.fail(token, "integer")
        return int(token.text)

    def regex(self) -> str:
        if self.buffer:
            raise self.fail(self.peek(), "regex")
        pattern = self.scanner.regex()
        if pattern is None:
            raise self.fail(self.peek(), "regex")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ParseError(f"error parsing regexp: {exc}") from None
        return pattern

    def _param(self, token: Token) -> object:
        if token.text not in self.params:
            raise ParseError(f"missing parameter: {token.text}")
        return self.params[token.text]

    # Queries and statements.

    def query(self) -> Query:
        query = Query()
        while True:
            while self.op(";"):
                pass
            if self.peek().kind == "EOF":
                return query
            query.statements.append(self.statement())
            token = self.peek()
            if token.kind != "EOF" and not (token.kind == "OP" and token.text == ";"):
                raise self.fail(token, ";")

    def statement(self) -> Statement:
        token = self.peek()
        if token.kind == "KEYWORD":
            if token.text == "SELECT":
                self.next()
                return self.select()
            if token.text == "SHOW":
                self.next()
                return self.show()
            if token.text == "CREATE":
                self.next()
                if self.keyword("DATABASE"):
                    name = self.ident()
                    if self.peek().kind == "KEYWORD" and self.peek().text == "WITH":
                        return self.refuse(" ".join((token.text, "DATABASE", "WITH")))
                    return CreateDatabase(name)
                return self.refuse(" ".join((token.text, self.next().text)))
            if token.text in {
                "DROP",
                "DELETE",
                "ALTER",
                "GRANT",
                "REVOKE",
                "KILL",
                "SET",
                "EXPLAIN",
            }:
                self.next()
                second = self.peek()
                words = token.text + (" " + second.text if second.kind == "KEYWORD" else "")
                return self.refuse(words)
        raise self.fail(token, STATEMENT_HEADS)

    def refuse(self, what: str) -> Refused:
        while True:
            token = self.peek()
            if token.kind == "EOF" or (token.kind == "OP" and token.text == ";"):
                return Refused(what)
            self.next()

    def select(self) -> Select:
        fields = [self.field()]
        while self.op(","):
            fields.append(self.field())
        into = None
        if self.keyword("INTO"):
            into = self.measurement().name or "?"
        self.expect_keyword("FROM")
        sources = self.sources()
        condition = self.expr() if self.keyword("WHERE") else None
        dimensions: list[Dimension] = []
        if self.keyword("GROUP"):
            self.expect_keyword("BY")
            dimensions = [self.dimension()]
            while self.op(","):
                dimensions.append(self.dimension())
        fill: Fill = "null"
        fill_value: float | int | None = None
        token = self.peek()
        if token.kind == "IDENT" and token.text.lower() == "fill" and not token.quoted:
            self.next()
            fill, fill_value = self.fill()
        descending = False
        if self.keyword("ORDER"):
            self.expect_keyword("BY")
            if self.ident().lower() != "time":
                raise ParseError("only ORDER BY time supported at this time")
            descending = self.keyword("DESC")
            if not descending:
                self.keyword("ASC")
        limits = {word: 0 for word in ("LIMIT", "OFFSET", "SLIMIT", "SOFFSET")}
        for word in limits:
            if self.keyword(word):
                limits[word] = self.integer()
        return Select(
            tuple(fields),
            tuple(sources),
            condition,
            tuple(dimensions),
            fill,
            fill_value,
            descending,
            limits["LIMIT"],
            limits["OFFSET"],
            limits["SLIMIT"],
            limits["SOFFSET"],
            into,
        )

    def fill(self) -> tuple[Fill, float | int | None]:
        self.expect_op("(")
        token = self.next()
        word = token.text.lower()
        value: float | int | None = None
        negative = False
        if token.kind == "OP" and token.text == "-":
            negative, token = True, self.next()
        if token.kind == "INTEGER":
            mode: Fill = "number"
            value = -int(token.text) if negative else int(token.text)
        elif token.kind == "NUMBER":
            mode, value = "number", -float(token.text) if negative else float(token.text)
        elif token.kind == "IDENT" and word in {"null", "none", "previous", "linear"}:
            mode = word  # type: ignore[assignment]
        else:
            raise ParseError(f"fill must be a function call, found {token.text}")
        self.expect_op(")")
        return mode, value

    def field(self) -> Field:
        expr = self.expr()
        alias = self.ident() if self.keyword("AS") else None
        return Field(expr, alias)

    def sources(self) -> list[Measurement]:
        sources = [self.measurement()]
        while self.op(","):
            sources.append(self.measurement())
        return sources

    def measurement(self) -> Measurement:
        if self.peek().kind == "OP" and self.peek().text == "/":
            self.buffer.clear()
            self.scanner.i -= 1
            return Measurement(regex=self.regex())
        parts = [self.ident()]
        while self.op("."):
            if self.peek().kind == "OP" and self.peek().text == "/":
                self.buffer.clear()
                self.scanner.i -= 1
                regex = self.regex()
                return self._qualified(parts, None, regex)
            parts.append("" if self.peek().kind == "OP" else self.ident())
        if len(parts) > 3:
            raise ParseError(f"too many segments in {'.'.join(parts)}")
        return self._qualified(parts[:-1], parts[-1], None)

    def _qualified(self, prefix: list[str], name: str | None, regex: str | None) -> Measurement:
        database = prefix[0] if len(prefix) == 2 else None
        policy = prefix[-1] if prefix else None
        return Measurement(name, regex, database or None, policy or None)

    def dimension(self) -> Dimension:
        token = self.peek()
        if token.kind == "OP" and token.text == "*":
            self.next()
            return Wildcard()
        if token.kind == "OP" and token.text == "/":
            self.buffer.clear()
            self.scanner.i -= 1
            return RegexLit(self.regex())
        name = self.ident()
        if name.lower() == "time" and not token.quoted and self.op("("):
            interval = self.duration()
            offset = 0
            if self.op(","):
                negative = self.op("-")
                if self.peek().kind == "IDENT" and self.peek().text.lower() == "now":
                    raise ParseError("time dimension offset now() is not supported")
                offset = -self.duration() if negative else self.duration()
            self.expect_op(")")
            return TimeDimension(interval, offset)
        return VarRef(name)

    def duration(self) -> int:
        token = self.next()
        if token.kind == "DURATION":
            return parse_duration(token.text)
        raise self.fail(token, "duration")

    def show(self) -> Show | Refused:
        token = self.next()
        if token.kind == "KEYWORD" and token.text == "DATABASES":
            return Show("databases")
        if token.kind == "KEYWORD" and token.text == "MEASUREMENTS":
            measurement = None
            if self.keyword("WITH"):
                self.expect_keyword("MEASUREMENT")
                if self.op("=~"):
                    measurement = Measurement(regex=self.regex())
                else:
                    self.expect_op("=")
                    measurement = self.measurement()
            condition = self.expr() if self.keyword("WHERE") else None
            limit, offset = self.limit_offset()
            return Show(
                "measurements", (), condition, measurement=measurement, limit=limit, offset=offset
            )
        if token.kind == "KEYWORD" and token.text in {"TAG", "FIELD"}:
            word = self.next()
            if word.kind == "KEYWORD" and word.text == "KEYS":
                sources = tuple(self.sources()) if self.keyword("FROM") else ()
                condition = None
                if token.text == "TAG" and self.keyword("WHERE"):
                    condition = self.expr()
                limit, offset = self.limit_offset()
                kind: ShowKind = "tag keys" if token.text == "TAG" else "field keys"
                return Show(kind, sources, condition, limit=limit, offset=offset)
            if token.text == "TAG" and word.kind == "KEYWORD" and word.text == "VALUES":
                return self.tag_values()
            raise self.fail(word, "KEYS" if token.text == "FIELD" else "KEYS, VALUES")
        if token.kind == "KEYWORD" and token.text == "RETENTION":
            self.expect_keyword("POLICIES")
            database = self.ident() if self.keyword("ON") else None
            return Show("retention policies", database=database)
        if token.kind == "KEYWORD" and token.text == "SERIES":
            sources = tuple(self.sources()) if self.keyword("FROM") else ()
            condition = self.expr() if self.keyword("WHERE") else None
            limit, offset = self.limit_offset()
            return Show("series", sources, condition, limit=limit, offset=offset)
        self.buffer.insert(0, token)
        return self.refuse(" ".join(("SHOW", token.text)))

    def tag_values(self) -> Show:
        sources = tuple(self.sources()) if self.keyword("FROM") else ()
        self.expect_keyword("WITH")
        self.expect_keyword("KEY")
        keys: tuple[str, ...] = ()
        regex = None
        if self.keyword("IN"):
            op = "IN"
            self.expect_op("(")
            names = [self.ident()]
            while self.op(","):
                names.append(self.ident())
            self.expect_op(")")
            keys = tuple(names)
        elif matched := self.op("=~", "!~"):
            op, regex = matched, self.regex()
        elif matched := self.op("=", "!=", "<>"):
            op, keys = ("!=" if matched == "<>" else matched), (self.ident(),)
        else:
            raise self.fail(self.peek(), "=, !=, =~, !~, IN")
        condition = self.expr() if self.keyword("WHERE") else None
        limit, offset = self.limit_offset()
        return Show("tag values", sources, condition, op, keys, regex, limit=limit, offset=offset)

    def limit_offset(self) -> tuple[int, int]:
        limit = self.integer() if self.keyword("LIMIT") else 0
        offset = self.integer() if self.keyword("OFFSET") else 0
        return limit, offset

    # Expressions, by precedence climbing.

    def expr(self, floor: int = 1) -> Expr:
        lhs = self.unary()
        while True:
            token = self.peek()
            op = token.text if token.kind in {"OP", "KEYWORD"} else ""
            precedence = PRECEDENCE.get(op, 0)
            if precedence < floor:
                return lhs
            self.next()
            if op in {"=~", "!~"}:
                rhs: Expr = RegexLit(self.regex()) if self.scanner_at("/") else self.unary()
            else:
                rhs = self.expr(precedence + 1)
            lhs = Binary("!=" if op == "<>" else op, lhs, rhs)

    def scanner_at(self, ch: str) -> bool:
        if self.buffer:
            return False
        self.scanner._skip_space()
        return self.scanner.text.startswith(ch, self.scanner.i)

    def unary(self) -> Expr:
        token = self.next()
        if token.kind == "OP" and token.text == "(":
            inner = self.expr()  # the tree holds the grouping: no node for parentheses
            self.expect_op(")")
            return inner
        if token.kind == "OP" and token.text == "-":
            after = self.next()
            if after.kind == "INTEGER":
                return IntegerLit(-int(after.text))
            if after.kind == "NUMBER":
                return NumberLit(-float(after.text))
            if after.kind == "DURATION":
                return DurationLit(-parse_duration(after.text))
            raise self.fail(after, "identifier, string, number, bool")
        if token.kind == "OP" and token.text == "*":
            return Wildcard()
        if token.kind == "STRING":
            return StringLit(token.text)
        if token.kind == "INTEGER":
            return IntegerLit(int(token.text))
        if token.kind == "NUMBER":
            return NumberLit(float(token.text))
        if token.kind == "DURATION":
            return DurationLit(parse_duration(token.text))
        if token.kind == "KEYWORD" and token.text == "DISTINCT":  # DISTINCT(x), DISTINCT x
            if self.op("("):
                inner = self.expr()
                self.expect_op(")")
            else:
                inner = VarRef(self.ident())
            return Call("distinct", (inner,))
        if token.kind == "KEYWORD" and token.text in {"TRUE", "FALSE"}:
            return BoolLit(token.text == "TRUE")
        if token.kind == "PARAM":
            return _literal(self._param(token))
        if token.kind == "IDENT":
            if self.op("("):
                args: list[Expr] = []
                if not self.op(")"):
                    args.append(self.expr())
                    while self.op(","):
                        args.append(self.expr())
                    self.expect_op(")")
                return Call(token.text.lower(), tuple(args))
            if self.op("::"):
                kind = self.next()
                if kind.kind not in {"IDENT", "KEYWORD"} or kind.text.lower() not in {
                    "float",
                    "integer",
                    "string",
                    "boolean",
                    "field",
                    "tag",
                    "unsigned",
                }:
                    raise self.fail(kind, "float, integer, string, boolean, field, tag")
                return VarRef(token.text, kind.text.lower())
            return VarRef(token.text)
        raise self.fail(token, "identifier, string, number, bool")


def _literal(value: object) -> Expr:
    """A bind parameter's JSON value as a literal (InfluxDB's own mapping)."""
    if isinstance(value, bool):
        return BoolLit(value)
    if isinstance(value, int):
        return IntegerLit(value)
    if isinstance(value, float):
        return NumberLit(value)
    if isinstance(value, str):
        return StringLit(value)
    raise ParseError(f"unable to bind parameter with type {type(value).__name__}")


def parse_query(text: str, params: Mapping[str, object] | None = None) -> Query:
    """The statements of ``text``; :class:`ParseError` in InfluxDB's words."""
    return _Parser(text, params or {}).query()
