"""The InfluxQL subset the front door reads, as a tree: what
:mod:`federation.core.influxql_parser` builds from a client's query and what
:mod:`federation.core.influxql` renders back to text, quoted, for the shards.

Nothing a client wrote is sent as it was written: the shards get the tree rendered, so
every identifier, string and regex is quoted by the catalogue. Times are nanoseconds
since the epoch; durations are nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

NS_PER = {
    "ns": 1,
    "u": 1_000,
    "µ": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 604_800_000_000_000,
}


@dataclass(frozen=True)
class VarRef:
    name: str
    type: str | None = None  # `price::float`


@dataclass(frozen=True)
class StringLit:
    value: str


@dataclass(frozen=True)
class NumberLit:
    value: float


@dataclass(frozen=True)
class IntegerLit:
    value: int


@dataclass(frozen=True)
class DurationLit:
    ns: int


@dataclass(frozen=True)
class BoolLit:
    value: bool


@dataclass(frozen=True)
class RegexLit:
    pattern: str


@dataclass(frozen=True)
class Wildcard:
    pass


@dataclass(frozen=True)
class Call:
    name: str  # lower case
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Binary:
    op: str  # AND OR = != < <= > >= =~ !~ + - * / %
    lhs: Expr
    rhs: Expr


Expr = (
    VarRef
    | StringLit
    | NumberLit
    | IntegerLit
    | DurationLit
    | BoolLit
    | RegexLit
    | Wildcard
    | Call
    | Binary
)


@dataclass(frozen=True)
class Field:
    expr: Expr
    alias: str | None = None


@dataclass(frozen=True)
class Measurement:
    name: str | None = None
    regex: str | None = None
    database: str | None = None
    policy: str | None = None


@dataclass(frozen=True)
class TimeDimension:
    interval_ns: int
    offset_ns: int = 0


Dimension = TimeDimension | VarRef | Wildcard | RegexLit

Fill = Literal["null", "none", "previous", "linear", "number"]


@dataclass(frozen=True)
class Select:
    fields: tuple[Field, ...]
    sources: tuple[Measurement, ...]
    condition: Expr | None = None
    dimensions: tuple[Dimension, ...] = ()
    fill: Fill = "null"
    fill_value: float | int | None = None
    descending: bool = False
    limit: int = 0
    offset: int = 0
    slimit: int = 0
    soffset: int = 0
    into: str | None = None  # refused, named in the error

    @property
    def time_dimension(self) -> TimeDimension | None:
        return next((d for d in self.dimensions if isinstance(d, TimeDimension)), None)


ShowKind = Literal[
    "databases",
    "measurements",
    "tag keys",
    "tag values",
    "field keys",
    "series",
    "retention policies",
]


@dataclass(frozen=True)
class Show:
    kind: ShowKind
    sources: tuple[Measurement, ...] = ()
    condition: Expr | None = None
    # SHOW TAG VALUES: the operator (= != =~ !~ IN) and its keys or regex.
    key_op: str | None = None
    keys: tuple[str, ...] = ()
    key_regex: str | None = None
    # SHOW MEASUREMENTS WITH MEASUREMENT: a name or regex.
    measurement: Measurement | None = None
    database: str | None = None  # SHOW RETENTION POLICIES ON
    limit: int = 0
    offset: int = 0


@dataclass(frozen=True)
class CreateDatabase:
    name: str


@dataclass(frozen=True)
class Refused:
    """A statement the federation does not run (it changes data or schema, or is not
    served): ``what`` names it in the error."""

    what: str


Statement = Select | Show | CreateDatabase | Refused


@dataclass
class Query:
    statements: list[Statement] = field(default_factory=list)
