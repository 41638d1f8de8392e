"""Plain data back to TOML, for ``--dump-config`` (the effective configuration of a service)."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dump_toml"]


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):  # inside a list: an inline table
        return "{" + ", ".join(f"{key} = {_value(item)}" for key, item in value.items()) + "}"
    return json.dumps(str(value))  # JSON string escapes are valid TOML basic strings


def dump_toml(data: dict[str, Any], table: str = "") -> str:
    """``data`` (plain values, lists, nested dicts) as TOML that ``tomllib`` reads back to the same
    data: plain keys first, then one ``[table]`` per nested dict."""
    lines = [f"{key} = {_value(value)}" for key, value in data.items() if not isinstance(value, dict)]
    text = "\n".join(lines) + "\n" if lines else ""
    for key, value in data.items():
        if isinstance(value, dict):
            name = f"{table}.{key}" if table else key
            text += f"\n[{name}]\n" + dump_toml(value, name)
    return text
