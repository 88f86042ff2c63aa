"""Each pretrained network's frozen spec (clipswap.models.spec.NetworkSpec) matches its graph: input size, embedding
width and every stage layer the losses read."""

from __future__ import annotations

import pytest

from clipswap.models.arcface import ARCFACE_SPEC, build_arcface
from clipswap.models.sface import SFACE_SPEC, build_sface
from clipswap.models.spec import NetworkSpec
from clipswap.training.run import IDENTITY_SPECS


@pytest.mark.parametrize("spec, build", [(SFACE_SPEC, build_sface), (ARCFACE_SPEC, build_arcface)],
                         ids=["sface", "arcface"])
def test_the_spec_matches_the_graph(spec, build):
    model = build()
    assert tuple(model.input.shape) == (None, spec.input_size, spec.input_size, 3)
    assert model.output.shape[-1] == spec.embedding_dim
    names = {layer.name for layer in model.layers}
    assert set(spec.stages) <= names, sorted(set(spec.stages) - names)
    strides = [spec.input_size // model.get_layer(stage).output.shape[1] for stage in spec.stages]
    assert strides == sorted(strides) and len(set(strides)) == len(strides), "stages run shallow to deep"


def test_the_trainer_reads_the_spec_of_each_identity_encoder():
    from clipswap.config import IDENTITY_ENCODERS

    assert set(IDENTITY_SPECS) == set(IDENTITY_ENCODERS)
    assert all(IDENTITY_SPECS[name].embedding_dim == width for name, width in IDENTITY_ENCODERS.items())


def test_a_spec_refuses_nonsense():
    with pytest.raises(ValueError, match="RGB or BGR"):
        NetworkSpec("x", 112, (0.0, 1.0), "YUV", "t", (), 8)
    with pytest.raises(ValueError, match="pixel range increasing"):
        NetworkSpec("x", 112, (1.0, 0.0), "RGB", "t", (), 8)
