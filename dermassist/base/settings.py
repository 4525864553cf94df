"""One resolver for every frozen settings dataclass: the command line, then the environment, then the default.

A config class derives from :class:`Settings`, names its variables' prefix (``env_prefix``) and the
error it raises, and writes each default once, as the field's default. ``Config.resolve(vars(args))``
then takes a flag when it is not None (argparse defaults are None), else ``<PREFIX><FIELD>`` from the
environment parsed as the field's type, else the default. A field whose variable has another name
says so with ``field(..., metadata=env_name("DERMASSIST_SEED"))``; a field whose type is itself a
Settings class is resolved the same way from the same flags. An empty variable counts as unset,
except for a ``str`` field, where it is the empty string. A default that follows from other fields (the
classifier's low-resolution epochs from its epochs) comes from the class's ``derived_defaults``.
``value_source`` says which of the three a value comes from, and ``setting_names`` names a field's flag
and variable for messages ("--http-port / DERMASSIST_HTTP_PORT must be ...").
A variable with a class's own prefix that no setting reads (``DERMASSIST_SEG_EPOCH`` for ``..._EPOCHS``) is
refused, with the name it likely meant, where no other class's prefix extends that prefix (the bare
``DERMASSIST_`` is shared by every class, so it is not checked).
"""
from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeGuard, TypeVar

from .errors import ConfigError
from .paths import PROJECT_ROOT

# Also in preprocess.params (a step's Triton parameters), and held equal by tests/dermassist/base/test_settings.py:
# this module imports only the standard library, so the load-test image, which ships the base without preprocess,
# can read its settings (tests/deploy checks it).
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")
_ENV_KEY = "env"
_FLAG_KEY = "flag"
# Where a resolved value came from (value_source).
FLAG, ENVIRONMENT, DEFAULT = "command line", "environment", "default"
S = TypeVar("S", bound="Settings")


class UnparsableType(TypeError):
    """A field's type has no text form: it can be set by a flag or in code, not from the environment."""


def env_name(name: str) -> dict[str, str]:
    """Field metadata naming the environment variable of a field whose name does not follow the prefix rule."""
    return {_ENV_KEY: name}


def flag_name(flag: str | None) -> dict[str, str | None]:
    """Field metadata naming the flag of a field whose flag is not its name in dashes (``--requests`` for
    ``requests_per_level``), or None for a field set by its variable only; merge with ``env_name``'s by ``|``."""
    return {_FLAG_KEY: flag}


def _optional_inner(kind: Any) -> Any:
    """``X`` for ``X | None``, else None."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(kind)) == 2:
            return args[0]
    return None


def _type_name(kind: Any) -> str:
    inner = _optional_inner(kind)
    if inner is not None:  # a variable that is set must hold the inner type ("int", not "int | None")
        return _type_name(inner)
    plain = typing.get_origin(kind) is None and hasattr(kind, "__name__")
    return kind.__name__ if plain else str(kind).replace("typing.", "")


def parse_text(raw: str, kind: Any) -> Any:
    """``raw`` as a value of ``kind`` (str, int, float, bool, Path, tuple[int, ...], or one of them | None).

    Raises ValueError for a value that is not of that type and UnparsableType for a type without a text form.
    """
    inner = _optional_inner(kind)
    if inner is not None:
        return parse_text(raw, inner)
    if kind is str:
        return raw
    if kind is bool:
        if raw.strip().lower() not in _TRUE + _FALSE:
            raise ValueError(raw)
        return raw.strip().lower() in _TRUE
    if kind in (int, float):
        return kind(raw)
    if kind is Path:
        return Path(raw)
    if typing.get_origin(kind) is tuple and typing.get_args(kind)[1:] == (Ellipsis,):
        item = typing.get_args(kind)[0]
        return tuple(parse_text(v, item) for v in raw.replace(" ", "").split(",") if v)
    raise UnparsableType(f"{kind} has no text form")


def _is_set(raw: str | None, kind: Any) -> TypeGuard[str]:
    """Whether a variable's text counts as given: set, and not empty unless the field is a ``str``."""
    return raw is not None and (raw != "" or kind is str)


def variable_name(cls: type, name: str) -> str:
    """The environment variable of ``cls``'s field ``name``: ``<env_prefix><NAME>``, or the one its metadata names."""
    (f,) = [f for f in fields(cls) if f.name == name]
    return f.metadata.get(_ENV_KEY, getattr(cls, "env_prefix", "") + name.upper())


def flag_of(cls: type, name: str) -> str | None:
    """The flag of ``cls``'s field ``name``: the one its metadata names (``flag_name``; None: it has none), else the
    field's name in dashes, as the commands spell it."""
    (f,) = [f for f in fields(cls) if f.name == name]
    return f.metadata[_FLAG_KEY] if _FLAG_KEY in f.metadata else f"--{name.replace('_', '-')}"


def setting_names(cls: type, name: str) -> str:
    """How an operator sets ``cls``'s field ``name``, for messages: its flag (``flag_of``) and its variable, e.g.
    ``"--http-port / DERMASSIST_HTTP_PORT"``, or the variable alone for a field without a flag."""
    flag = flag_of(cls, name)
    return variable_name(cls, name) if flag is None else f"{flag} / {variable_name(cls, name)}"


def value_source(cls: type, name: str, overrides: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None) -> str:
    """Where ``resolve`` takes ``cls``'s field ``name`` from: FLAG (a non-None override), ENVIRONMENT (its
    variable, set and non-empty unless the field is a ``str``) or DEFAULT, by the rules of :func:`resolve_values`."""
    environ = os.environ if environ is None else environ
    if (overrides or {}).get(name) is not None:
        return FLAG
    if _is_set(environ.get(variable_name(cls, name)), typing.get_type_hints(cls)[name]):
        return ENVIRONMENT
    return DEFAULT


_SETTINGS_CLASSES: list[type] = []  # every Settings class defined so far (Settings.__init_subclass__)


def unknown_variables(cls: type, environ: Mapping[str, str]) -> list[str]:
    """The variables of ``environ`` with ``cls``'s prefix that no setting of a class with that prefix reads, each
    with the name it likely meant; none where another class's prefix extends it (``DERMASSIST_`` is every class's)."""
    prefix = getattr(cls, "env_prefix", "")
    if not prefix or any(p != prefix and p.startswith(prefix) for p in (getattr(c, "env_prefix", "")
                                                                         for c in _SETTINGS_CLASSES)):
        return []
    known = {variable_name(c, f.name) for c in _SETTINGS_CLASSES if getattr(c, "env_prefix", "") == prefix
             and is_dataclass(c) for f in fields(c) if f.init}
    unknown = sorted(k for k in environ if k.startswith(prefix) and k not in known)
    return [name + "".join(f" (did you mean {m}?)" for m in difflib.get_close_matches(name, sorted(known), 1))
            for name in unknown]


def resolve_values(
    cls: type,
    prefix: str,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    error: type[Exception] = ConfigError,
) -> dict[str, Any]:
    """Keyword arguments for ``cls``: a non-None override, else the field's variable, else nothing (the default)."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):
        kind = hints[f.name]
        if not f.init:
            continue
        if overrides.get(f.name) is not None:
            values[f.name] = overrides[f.name]
        elif isinstance(kind, type) and issubclass(kind, Settings) and is_dataclass(kind):
            values[f.name] = kind.resolve(overrides, environ)
        else:
            name = f.metadata.get(_ENV_KEY, prefix + f.name.upper())
            raw = environ.get(name)
            if not _is_set(raw, kind):
                continue
            try:
                values[f.name] = parse_text(raw, kind)
            except ValueError as e:
                raise error(f"environment variable {name} must be of type {_type_name(kind)}, got {raw!r}") from e
            except UnparsableType as e:
                raise error(f"environment variable {name} cannot set {f.name} ({_type_name(kind)}); "
                            "unset it and pass the value in code") from e
    return values


class Settings:
    """Base of a frozen settings dataclass: ``resolve`` reads flags, then ``<env_prefix><FIELD>``, then defaults."""

    env_prefix: ClassVar[str] = "DERMASSIST_"
    config_error: ClassVar[type[Exception]] = ConfigError

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _SETTINGS_CLASSES.append(cls)

    @classmethod
    def resolve(cls: type[S], overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> S:
        """Build the config: a non-None override (a flag) wins, then the environment, then the default."""
        unknown = unknown_variables(cls, os.environ if environ is None else environ)
        if unknown:
            raise cls.config_error(f"environment variable(s) {', '.join(unknown)}: no setting reads them; expected "
                                   f"one of the {cls.env_prefix}* settings: unset them or correct the name")
        values = resolve_values(cls, cls.env_prefix, overrides, environ, cls.config_error)
        return cls(**cls.derived_defaults(values))

    @classmethod
    def derived_defaults(cls, given: dict[str, Any]) -> dict[str, Any]:
        """``given`` (the values set by flags or the environment) plus any default that follows a rule over
        other fields; a config with such a default overrides this (none by default)."""
        return given


def setting_help(cls: type[Settings], name: str, text: str) -> str:
    """Help of the flag that sets ``cls``'s field ``name``: ``text``, then its variable and default, e.g.
    ``"concurrent users (LOADTEST_USERS, default 4)"``."""
    (f,) = [f for f in fields(cls) if f.name == name]  # type: ignore[arg-type]
    variable = f.metadata.get(_ENV_KEY, cls.env_prefix + name.upper())
    if f.default is not MISSING:
        default = f.default
    elif f.default_factory is not MISSING:
        default = f.default_factory()
    else:
        return f"{text} ({variable}; required)"
    if isinstance(default, Path) and default.is_relative_to(PROJECT_ROOT):  # not the working folder's: say whose
        default = f"{default.relative_to(PROJECT_ROOT)} of the checkout DermAssist runs from"
    elif isinstance(default, tuple):
        default = ",".join(map(str, default))
    if isinstance(default, bool):
        default = str(default).lower()
    return f"{text} ({variable}, default {'none' if default is None or default == '' else default})"
