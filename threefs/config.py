"""Typed TOML configuration: every section is a ``Section`` struct with documented defaults.

A config file may leave any key out (the default applies) but may not name a key the struct does
not declare, nor give a value of the wrong type: both raise ``ThreeFSError(CONFIG_INVALID)`` with
the dotted key and the file in the message, and nothing is half-applied.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from threefs.errors import Code, ThreeFSError

__all__ = ["Section", "load_config", "parse_config", "config_to_dict"]


class Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base of every config section. Subclasses declare fields with defaults; a range check
    belongs in ``__post_init__`` and raises ``ThreeFSError(CONFIG_INVALID)`` naming the key.

    Example::

        class RpcConfig(Section):
            max_frame_bytes: int = 64 << 20
    """


S = TypeVar("S", bound=Section)


def _dotted(path: str) -> str:
    """Turn msgspec's ``$.a.b[0]`` location into ``a.b[0]``."""
    return path.removeprefix("$").removeprefix(".")


def _describe(exc: msgspec.ValidationError) -> tuple[str, str]:
    """Split msgspec's message ``"<what> - at `$.x.y`"`` into (what, key)."""
    text = str(exc)
    what, sep, where = text.rpartition(" - at `")
    if not sep:
        return text, ""
    return what, _dotted(where.rstrip("`"))


def parse_config(cls: type[S], data: dict[str, Any], source: str = "<dict>") -> S:
    """Validate ``data`` (a parsed TOML document) against ``cls``.

    Raises ``ThreeFSError(CONFIG_INVALID)`` naming the offending key and ``source``.
    """
    try:
        return msgspec.convert(data, cls, strict=True)
    except ThreeFSError as exc:  # a section's __post_init__ range check
        raise ThreeFSError(Code.CONFIG_INVALID, f"{source}: {exc.message}") from None
    except msgspec.ValidationError as exc:
        what, key = _describe(exc)
        if what.startswith("Object contains unknown field"):
            unknown = what.split("`")[1] if "`" in what else "?"
            full = f"{key}.{unknown}" if key else unknown
            raise ThreeFSError(Code.CONFIG_INVALID, f"{source}: unknown key '{full}'") from None
        location = f"key '{key}'" if key else "top level"
        raise ThreeFSError(Code.CONFIG_INVALID, f"{source}: {location}: {what}") from None


def load_config(cls: type[S], path: str | Path | None) -> S:
    """Read TOML from ``path`` into ``cls``; ``None`` gives the defaults.

    Raises ``ThreeFSError(CONFIG_INVALID)`` for a missing file, bad TOML syntax, an unknown key
    or a wrong type; the message names the file (and the key where there is one).
    """
    if path is None:
        return cls()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ThreeFSError(Code.CONFIG_INVALID, f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ThreeFSError(Code.CONFIG_INVALID, f"{path}: not valid TOML: {exc}") from None
    return parse_config(cls, data, str(path))


def config_to_dict(config: Section) -> dict[str, Any]:
    """The config as plain data (for `--dump-config` and for writing example files)."""
    return msgspec.to_builtins(config)
