"""The model zoo: deterministic names whatever was built before in the process."""

from __future__ import annotations

import pytest

from harness.models import ModelSpec, build_model


@pytest.mark.parametrize("flavour, input_name", [("keras3", "input_layer"), ("tf_keras", "input_1")])
def test_layer_names_do_not_depend_on_earlier_models(flavour: str, input_name: str) -> None:
    spec = ModelSpec("dense", flavour)  # type: ignore[arg-type]
    first = build_model(spec)
    build_model(ModelSpec("cnn", flavour))  # type: ignore[arg-type]
    again = build_model(spec)
    assert [layer.name for layer in again.layers] == [layer.name for layer in first.layers]
    assert again.inputs[0].name.split(":")[0] == input_name
