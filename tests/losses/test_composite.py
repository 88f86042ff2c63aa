import pytest
import tensorflow as tf

from clipswap.losses.composite import GENERATOR_TERMS, LossWeights, discriminator_loss, generator_loss


def test_paper_defaults_and_facedancer_weights():
    w = LossWeights()
    assert (w.id, w.rec, w.perceptual, w.contra, w.att, w.adv, w.cycle, w.ifsr, w.r1_gamma) == (
        10,
        5,
        0.2,
        0.3,
        10,
        1,
        0,
        0,
        10,
    )
    fd = LossWeights.facedancer()
    assert (fd.contra, fd.att, fd.cycle, fd.ifsr) == (0, 0, 1, 1)
    with pytest.raises(ValueError, match="rec"):
        LossWeights(rec=-1.0)
    with pytest.raises(ValueError, match="id"):
        LossWeights(id=float("nan"))


def test_generator_total_and_named_terms():
    terms = {"id": tf.constant(0.5), "rec": 0.2, "att": tf.constant(0.1), "cycle": tf.constant(3.0)}
    total, named = generator_loss(terms, LossWeights())
    # 10 * 0.5 + 5 * 0.2 + 10 * 0.1; cycle has weight 0
    assert float(total) == pytest.approx(7.0, rel=1e-6)
    assert float(named["total"]) == pytest.approx(7.0, rel=1e-6)
    assert float(named["id_weighted"]) == pytest.approx(5.0) and float(named["rec"]) == pytest.approx(0.2)
    assert float(named["cycle"]) == 3.0 and float(named["cycle_weighted"]) == 0.0
    assert float(named["contra"]) == 0.0 and float(named["contra_weighted"]) == 0.0
    assert set(named) == {"total"} | set(GENERATOR_TERMS) | {f"{t}_weighted" for t in GENERATOR_TERMS}


def test_generator_loss_in_tf_function_and_errors():
    total = tf.function(lambda a: generator_loss({"adv": a, "ifsr": a}, LossWeights.facedancer())[0])(tf.constant(2.0))
    assert float(total) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="identity"):
        generator_loss({"identity": 1.0}, LossWeights())
    with pytest.raises(ValueError, match="scalar"):
        generator_loss({"id": tf.ones([2])}, LossWeights())


def test_discriminator_loss():
    total, named = discriminator_loss({"d_adv": 1.5, "r1": tf.constant(0.25)})
    assert float(total) == pytest.approx(1.75) and float(named["d_total"]) == pytest.approx(1.75)
    assert float(discriminator_loss({"d_adv": 1.0})[1]["r1"]) == 0.0
    with pytest.raises(ValueError, match="unknown"):
        discriminator_loss({"gp": 1.0})


def test_the_loss_term_table_drives_weights_totals_tags_and_the_bar():
    import dataclasses

    from clipswap.config import LossWeights
    from clipswap.losses import composite
    from clipswap.losses.terms import BY_NAME, SHOWN, TERMS, LossTerm, active_generator_terms, tag
    from clipswap.training.callbacks import ProgressBar

    generator = [t.name for t in TERMS if t.side == "G"]
    assert [f.name for f in dataclasses.fields(LossWeights)] == [*generator, "r1_gamma"]
    assert composite.GENERATOR_TERMS == tuple(generator) and composite.DISCRIMINATOR_TERMS == ("d_adv", "r1")
    off = LossWeights(id=0, rec=0, perceptual=0, contra=0, att=0, adv=0, teacher=0)
    assert active_generator_terms(off) == ("id", "rec", "adv")
    assert active_generator_terms(LossWeights()) == ("id", "rec", "perceptual", "contra", "att", "adv")
    assert active_generator_terms(LossWeights.facedancer()) == ("id", "rec", "perceptual", "adv", "cycle", "ifsr")
    assert tag("id") == "loss_g/id" and tag("r1") == "loss_d/r1" and tag("d_total") == "loss_d/d_total"
    assert tag("g_total") == "loss_g/g_total" and tag("lr_g") == "optimizer/lr_g"
    assert ProgressBar.SHOWN == SHOWN and SHOWN[0] == "g_total" and "id" in SHOWN
    assert all(BY_NAME[name].always for name in ("id", "rec", "adv", "d_adv", "r1"))
    with pytest.raises(ValueError, match="side must be one of"):
        LossTerm("x", "E", "nothing", None, "identity.identity_loss")


def test_every_term_names_its_weight_field_its_function_and_the_loss_computes_it():
    """The table's weight fields are LossWeights' (the D terms enter unweighted) with the rows' defaults, each
    function exists in clipswap.losses, and a generator row's function takes the pass and the row's options (the
    training loss calls it with exactly those)."""
    import dataclasses
    import importlib
    import inspect

    from clipswap.config import LossWeights
    from clipswap.losses.terms import INPUTS, TERMS, LossTerm, metric_names, weight_of

    fields = {f.name: f.default for f in dataclasses.fields(LossWeights)}
    for term in TERMS:
        assert (term.weight in fields) if term.side == "G" else term.weight is None, term.name
        module, function = term.function.split(".")
        assert callable(getattr(importlib.import_module(f"clipswap.losses.{module}"), function)), term.function
        assert set(term.needs) <= set(INPUTS)
        if term.side == "G":
            assert fields[term.weight] == term.default, term.name
            step, *options = inspect.signature(term.resolve()).parameters.values()
            assert {p.name: p.default for p in options} == dict(term.options), term.name
    assert weight_of(TERMS[0], LossWeights(id=3.0)) == 3.0 and weight_of(TERMS[-1], LossWeights()) == 1.0
    assert metric_names(LossWeights.facedancer()) == (
        "id",
        "rec",
        "perceptual",
        "adv",
        "cycle",
        "ifsr",
        "g_total",
        "d_adv",
        "r1",
        "d_total",
    )
    with pytest.raises(ValueError, match="unknown inputs"):
        LossTerm("x", "G", "nothing", "id", "identity.identity_loss", needs=("pose",))
    with pytest.raises(ValueError, match="module.function"):
        LossTerm("x", "G", "nothing", "id", "identity_loss")
