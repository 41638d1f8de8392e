"""Hypothesis strategies for request bodies that do not match their method's struct.

``invalid_bodies(spec, example)`` starts from a valid request of ``spec`` in its wire form and
breaks it one way: a body that is no map at all, a required field left out, a field (at any
depth) of the wrong type, or an integer out of its range (negative, 2**64 - 1 where fewer bits
are allowed, floats standing for 2**64 and beyond, which MessagePack integers cannot carry).
Every body is checked against the method's own decoder, so only bodies the server must refuse
with RPC_INVALID_BODY are drawn.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fuzz_cluster import encode_body, wire_form
from hypothesis import assume
from hypothesis import strategies as st

from threefs.wire.common import MethodSpec

__all__ = ["invalid_bodies", "is_refused", "required_fields"]

# Values of every MessagePack type, and integers at and past the edges of every field width.
edge_integers = st.sampled_from(
    [-1, -(2**31), -(2**63), 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
) | st.integers(-(2**63), 2**64 - 1)
beyond_u64 = st.sampled_from([float(2**64), float(2**80), 1e300, -1e300, float("inf"), float("nan")])
wrong_values = st.one_of(
    st.none(),
    st.booleans(),
    edge_integers,
    beyond_u64,
    st.floats(allow_nan=False, width=64),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-5, 5), max_size=2),
)
not_a_map = st.one_of(
    st.none(),
    st.booleans(),
    edge_integers,
    beyond_u64,
    st.text(max_size=16),
    st.binary(max_size=16),
    st.lists(wrong_values, max_size=4),
)


def is_refused(spec: MethodSpec, body: bytes) -> bool:
    """Whether ``spec``'s request decoder refuses ``body`` (as the server's does)."""
    try:
        spec.request_decoder.decode(body)
    except msgspec.DecodeError:
        return True
    return False


def required_fields(spec: MethodSpec) -> list[str]:
    """The request fields without a default: leaving one out must be refused."""
    info = msgspec.inspect.type_info(spec.request_type)
    return [f.encode_name for f in info.fields if f.required]  # type: ignore[attr-defined]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (map keys and list indexes) to a value inside ``value``, ``()`` excluded."""
    paths: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        paths.append((*prefix, key))
        paths.extend(_paths(child, (*prefix, key)))
    return paths


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replaced(copy[head], rest, new)
    return copy


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


@st.composite
def invalid_bodies(draw: st.DrawFn, spec: MethodSpec, example: msgspec.Struct) -> bytes:
    """A body for ``spec`` that its decoder refuses (see the module docstring); ``example`` is
    a valid request to break, ideally with every optional field set."""
    form = wire_form(example)
    paths = _paths(form)
    required = required_fields(spec)
    kinds = ["not a map"]
    if required:
        kinds.append("missing field")
    if paths:
        kinds += ["wrong type", "out of range"]
    kind = draw(st.sampled_from(kinds))
    if kind == "not a map":
        value: Any = draw(not_a_map)
    elif kind == "missing field":
        name = draw(st.sampled_from(required))
        value = {key: item for key, item in form.items() if key != name}
    elif kind == "wrong type":
        value = _replaced(form, draw(st.sampled_from(paths)), draw(wrong_values))
    else:
        numeric = [path for path in paths if type(_at(form, path)) is int]
        assume(numeric)
        value = _replaced(form, draw(st.sampled_from(numeric)), draw(edge_integers | beyond_u64))
    body = encode_body(value)
    assume(is_refused(spec, body))
    return body
