"""Settings: each process builds one frozen model at start, from its environment and its
command line, and passes it to what it runs; nothing reads ``os.environ`` after that.

Construction is separate from loading. A model built from plain values (tests do)
checks its own bounds; :meth:`SettingsModel.load` builds it from an environment mapping
and the flags given on the command line (a flag wins over its variable, an empty
variable counts as unset) and turns every problem into one :class:`ConfigError` naming
the variable or flag, what is wrong and the fix. Each field says where it comes from
(:func:`setting`): its variable, its flag, its bounds and its help text, from which
:func:`add_flags` builds the command line and a test checks docs/operations.md.
A model holding another (a *section*, such as the alerts settings) loads it from the
same environment and flags.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self, cast, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from federation.core.durations import Duration
from federation.core.errors import ConfigError

DEFAULT_CONFIG = "shards.yaml"


def _look_back(value: object) -> object:
    return Duration.parse(value) if isinstance(value, str) else value


def _length(value: object) -> object:
    return Duration.parse_length(value) if isinstance(value, str) else value


def _length_text(value: Duration) -> str:
    return value.length


LookBack = Annotated[Duration, BeforeValidator(_look_back), PlainSerializer(str)]
"""A look-back such as ``-30d``, in the grammar of :meth:`Duration.parse`."""
Length = Annotated[Duration, BeforeValidator(_length), PlainSerializer(_length_text)]
"""A length such as ``7d``, in the grammar of :meth:`Duration.parse_length`."""


LevelName = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LEVELS: tuple[str, ...] = get_args(LevelName)


def _level(value: object) -> object:
    if isinstance(value, str):
        if value.upper() not in LEVELS:
            raise ValueError(f"{value!r} is not one of {', '.join(LEVELS)} (in any case)")
        return value.upper()
    return value


LogLevel = Annotated[LevelName, BeforeValidator(_level)]
"""A logging level's name, in any case."""


def setting(
    default: Any = None,
    *,
    help: str,
    env: str | None = None,
    flag: str | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    example: str | None = None,
    default_text: str | None = None,
    group: str | None = None,
    metavar: str | None = None,
    repeat: bool = False,
    secret: bool = False,
) -> Any:
    """A field read from ``env`` and/or ``flag``, with its bounds and help text.

    ``example`` is a valid value for the fix of an error (the default serves when it
    is one); ``default_text`` says the default in words when it depends on other
    settings; ``group`` and ``metavar`` shape ``--help``; a ``repeat`` flag may be
    given several times; a ``secret`` is left out of the model's repr.
    """
    extra: JsonDict = {"repeat": repeat}
    for key, value in (
        ("env", env),
        ("flag", flag),
        ("example", example),
        ("default_text", default_text),
        ("group", group),
        ("metavar", metavar),
    ):
        if value is not None:
            extra[key] = value
    return Field(
        default, description=help, ge=ge, gt=gt, le=le, repr=not secret, json_schema_extra=extra
    )


@dataclass(frozen=True)
class Spec:
    """One setting as its field declares it."""

    name: str
    field: FieldInfo

    def _extra(self, key: str) -> str | None:
        extra = self.field.json_schema_extra
        value = extra.get(key) if isinstance(extra, dict) else None
        return value if isinstance(value, str) else None

    @property
    def env(self) -> str | None:
        return self._extra("env")

    @property
    def flag(self) -> str | None:
        return self._extra("flag")

    @property
    def help(self) -> str:
        return self.field.description or ""

    @property
    def group(self) -> str | None:
        return self._extra("group")

    @property
    def repeat(self) -> bool:
        extra = self.field.json_schema_extra
        return isinstance(extra, dict) and extra.get("repeat") is True

    @property
    def choices(self) -> tuple[str, ...]:
        """The values of a Literal field (None aside), else nothing."""
        annotation = self.field.annotation
        for part in (annotation, *get_args(annotation)):
            if get_origin(part) is Literal:
                return tuple(str(choice) for choice in get_args(part))
        return ()

    @property
    def metavar(self) -> str | None:
        if self.choices:
            return "{" + ",".join(self.choices) + "}"
        return self._extra("metavar")

    @property
    def default_text(self) -> str:
        """The default as an operator writes it: ``10``, ``7d``, ``none``, ``off``."""
        if (text := self._extra("default_text")) is not None:
            return text
        shown = self.field.get_default(call_default_factory=True)
        for rule in self.field.metadata:
            if isinstance(rule, PlainSerializer):  # a duration writes itself in its grammar
                shown = cast(Callable[[Any], Any], rule.func)(shown)
        if shown is None or shown in ((), [], {}, ""):
            return "none"
        if isinstance(shown, bool):
            return "on" if shown else "off"
        return _number(shown) if isinstance(shown, float) else str(shown)

    @property
    def example(self) -> str | None:
        """A valid value to suggest in a fix."""
        text = self._extra("example")
        if text is None and self._extra("default_text") is None:
            text = self.default_text
        return None if text in (None, "none", "on", "off") else text

    def bounds(self) -> str:
        """``0.01 to 600``, ``at least 1``, ``above 0``, ``at most 5`` or nothing."""
        low = high = None
        above = False
        for rule in self.field.metadata:
            if getattr(rule, "ge", None) is not None:
                low = rule.ge
            if getattr(rule, "gt", None) is not None:
                low, above = rule.gt, True
            if getattr(rule, "le", None) is not None:
                high = rule.le
        if low is not None and high is not None:
            return f"{_number(low)} to {_number(high)}"
        if low is not None:
            return f"above {_number(low)}" if above else f"at least {_number(low)}"
        return "" if high is None else f"at most {_number(high)}"


def _number(value: float) -> str:
    """``10``, ``0.01``, ``2592000``: no trailing zeros, no exponent."""
    return f"{value:.12g}"


def _section(field: FieldInfo) -> type[SettingsModel] | None:
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, SettingsModel):
        return annotation
    return None


def settings_of(model: type[SettingsModel], *, sections: bool = True) -> Iterator[Spec]:
    """Every setting of ``model`` and (if ``sections``) of its sections, in declaration
    order."""
    for name, field in model.model_fields.items():
        section, spec = _section(field), Spec(name, field)
        if section is not None:
            if sections:
                yield from settings_of(section)
        elif spec.env or spec.flag:
            yield spec


class SettingsModel(BaseModel):
    """Base of every settings model: frozen, no unknown field, no NaN or infinity."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @classmethod
    def load(cls, env: Mapping[str, str], flags: Mapping[str, object] | None = None) -> Self:
        """The model from an environment and the flags given on the command line (by flag
        name, as :func:`flags_given` returns them); one ConfigError lists every problem."""
        given = flags or {}
        try:
            return cls.model_validate(cls._given(env, given))
        except ValidationError as exc:
            problems = [_explain(cls, error, given) for error in exc.errors()]
            raise ConfigError("\n".join(problems)) from None

    @classmethod
    def _given(cls, env: Mapping[str, str], flags: Mapping[str, object]) -> dict[str, Any]:
        values: dict[str, Any] = cls._captured(env)
        for name, field in cls.model_fields.items():
            section = _section(field)
            spec = Spec(name, field)
            if section is not None:
                values[name] = section._given(env, flags)
            elif spec.flag is not None and spec.flag in flags:
                values[name] = flags[spec.flag]
            elif spec.env is not None and env.get(spec.env):
                values[name] = env[spec.env]
        return values

    @classmethod
    def _captured(cls, env: Mapping[str, str]) -> dict[str, Any]:
        """Values the model takes from the environment beyond its fields' variables."""
        return {}


_NUMBER_ERRORS = {
    "float_parsing",
    "float_type",
    "finite_number",
    "int_parsing",
    "int_type",
    "int_from_float",
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
}


def _spec_at(model: type[SettingsModel], loc: tuple[int | str, ...]) -> Spec | None:
    """The setting an error's location points at (None: a check across settings)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        section = _section(field)
        if section is None:
            return Spec(str(part), field)
        model = section
    return None


def _explain(model: type[SettingsModel], error: ErrorDetails, flags: Mapping[str, object]) -> str:
    spec = _spec_at(model, error["loc"])
    ctx = error.get("ctx") or {}
    if "error" in ctx:  # a validator's own words, which quote the value
        what = str(ctx["error"])
    elif spec is not None and error["type"] in _NUMBER_ERRORS:
        kind = "whole number" if spec.field.annotation is int else "number"
        bounds = spec.bounds()
        if bounds:  # a number from 1 to 9, of at least 1, of at most 9, above 0
            joint = "from " if " to " in bounds else "of " if bounds.startswith("at ") else ""
            kind += f" {joint}{bounds}"
        what = f"{error['input']!r} is not a {kind}"
    elif spec is not None and error["type"] == "literal_error":
        what = f"{error['input']!r} is not one of {', '.join(spec.choices)}"
    else:
        what = f"{error['input']!r}: {error['msg']}"
    if spec is None:
        return what  # a check across settings names what it needs itself
    if spec.flag is not None and spec.flag in flags:
        name, fix = spec.flag, f"pass e.g. {spec.flag} {spec.example}"
        if spec.example and spec.example.startswith("-"):
            fix = f"pass e.g. {spec.flag}={spec.example}"
    else:
        name = spec.env or spec.flag or spec.name
        fix = f"set e.g. {name}={spec.example}"
    if spec.example is None:
        fix = f"see {name} in docs/operations.md"
    return f"{name}: {what}; fix: {fix}"


def add_flags(
    parser: argparse.ArgumentParser,
    model: type[SettingsModel],
    *,
    only: Collection[str] | None = None,
    skip: Collection[str] = (),
    grouped: bool = True,
) -> None:
    """The flags of ``model`` (and its sections) on ``parser``, ``only`` those if given,
    in their ``--help`` groups if ``grouped``.

    A flag parses to its text (True for a switch, a list for a repeated flag) under its
    own name; :meth:`SettingsModel.load` checks it, so a bad flag is told like a bad
    variable."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    seen: set[str] = set()
    for spec in settings_of(model):
        flag = spec.flag
        if flag is None or flag in seen or flag in skip or (only is not None and flag not in only):
            continue
        seen.add(flag)
        target: argparse._ActionsContainer = parser
        if grouped and spec.group is not None:
            if spec.group not in groups:
                groups[spec.group] = parser.add_argument_group(spec.group)
            target = groups[spec.group]
        text = spec.help.replace("%", "%%")
        if spec.bounds():
            text += f", {spec.bounds()}"
        if spec.field.annotation is bool:
            target.add_argument(flag, dest=flag, action="store_true", default=None, help=text)
            continue
        default = spec.default_text.replace("%", "%%")
        if spec.env is not None:
            default += f"; or set {spec.env}"
        target.add_argument(
            flag,
            dest=flag,
            default=None,
            action="append" if spec.repeat else "store",
            metavar=spec.metavar or flag.lstrip("-").upper().replace("-", "_"),
            help=f"{text} (default: {default})",
        )


def flags_given(args: argparse.Namespace) -> dict[str, object]:
    """The flags given on the command line, by name, for :meth:`SettingsModel.load`."""
    return {k: v for k, v in vars(args).items() if k.startswith("-") and v is not None}


class ProcessSettings(SettingsModel):
    """What every process of the project takes: the shard map and how much it logs."""

    config_path: str = setting(
        DEFAULT_CONFIG, env="FEDERATION_CONFIG", flag="--config", help="the shard map"
    )
    log_level: LogLevel = setting("INFO", flag="--log-level", help="how much is logged (any case)")
