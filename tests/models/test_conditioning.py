"""The generator's inputs by name (clipswap.models.conditioning) against the inputs the Generator builds."""

from __future__ import annotations

import pytest

from clipswap.config import get_preset
from clipswap.models.conditioning import describe_inputs, input_list, input_specs
from clipswap.models.generator import Generator


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_the_named_specs_are_the_generators_inputs(preset):
    config = get_preset(preset).model
    model = Generator(config)
    specs = input_specs(config)
    assert [tensor.name for tensor in model.inputs] == list(specs)
    assert [tuple(tensor.shape[1:]) for tensor in model.inputs] == list(specs.values())
    assert input_list(model, specs) == list(specs.values())
    # Given in another order, the values still come out in the model's.
    assert input_list(model, dict(reversed(list(specs.items())))) == list(specs.values())


def test_describe_inputs_names_the_source_crop_only_when_read():
    assert describe_inputs(get_preset("tiny").model) == "64px + 128-d"
    assert describe_inputs(get_preset("demo").model) == "128px + 128-d + source"


def test_a_missing_or_unknown_input_name_is_refused():
    model = Generator(get_preset("demo").model)
    with pytest.raises(ValueError, match=r"missing \['source'\], unexpected \[\]"):
        input_list(model, {"target": 1, "identity": 2})
    with pytest.raises(ValueError, match=r"missing \[\], unexpected \['warp'\]"):
        input_list(model, {"target": 1, "identity": 2, "source": 3, "warp": 4})
