"""The id registries: service ids and method ids are unique and never reuse a retired id."""

from __future__ import annotations

import importlib
import pkgutil

import msgspec
import pytest

import threefs.wire
from threefs.wire.common import MethodSpec, ServiceSpec
from threefs.wire.debug import EchoRequest, EchoResponse
from threefs.wire.ids import RETIRED_SERVICE_IDS, ServiceId


def all_service_specs() -> list[ServiceSpec]:
    specs = []
    for module_info in pkgutil.iter_modules(threefs.wire.__path__):
        module = importlib.import_module(f"threefs.wire.{module_info.name}")
        specs += [value for value in vars(module).values() if isinstance(value, ServiceSpec)]
    return specs


def test_service_ids_are_unique_and_not_retired():
    values = [int(member) for member in ServiceId.__members__.values()]  # includes aliases
    assert len(values) == len(set(values))
    assert not set(values) & set(RETIRED_SERVICE_IDS)
    assert {ServiceId.DEBUG: 1, ServiceId.MGMTD: 2, ServiceId.META: 3, ServiceId.STORAGE: 4} == {
        member: int(member) for member in ServiceId
    }


def test_every_service_spec_is_registered_once():
    specs = all_service_specs()
    assert specs, "no ServiceSpec found in threefs.wire"
    ids = [spec.service_id for spec in specs]
    assert len(ids) == len(set(ids))
    assert all(service_id in ServiceId._value2member_map_ for service_id in ids)


@pytest.mark.parametrize("spec", all_service_specs(), ids=lambda spec: spec.name)
def test_methods_have_unique_ids_and_paired_message_names(spec: ServiceSpec):
    method_ids = [method.method_id for method in spec.methods]
    assert len(method_ids) == len(set(method_ids))
    assert not set(method_ids) & set(spec.retired_method_ids)
    for method in spec.methods:
        request, response = method.request_type.__name__, method.response_type.__name__
        assert request.endswith("Request") and response.endswith("Response"), method.name
        assert request.removesuffix("Request") == response.removesuffix("Response"), method.name
        assert issubclass(method.request_type, msgspec.Struct)


def test_service_spec_refuses_reused_ids():
    echo = MethodSpec(ServiceId.DEBUG, 1, "A", EchoRequest, EchoResponse)
    again = MethodSpec(ServiceId.DEBUG, 1, "B", EchoRequest, EchoResponse)
    with pytest.raises(ValueError, match="reused"):
        ServiceSpec(ServiceId.DEBUG, "Debug", (echo, again))
    with pytest.raises(ValueError, match="reused"):
        ServiceSpec(ServiceId.DEBUG, "Debug", (echo,), retired_method_ids={1: "retired"})
    other_service = MethodSpec(ServiceId.META, 2, "C", EchoRequest, EchoResponse)
    with pytest.raises(ValueError, match="service id"):
        ServiceSpec(ServiceId.DEBUG, "Debug", (echo, other_service))


def test_method_spec_requires_structs():
    with pytest.raises(TypeError):
        MethodSpec(ServiceId.DEBUG, 1, "Bad", dict, EchoResponse)  # type: ignore[arg-type]
