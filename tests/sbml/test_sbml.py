"""SBML support: compiled rate laws against libroadrunner, the homeostatic truth, perturbed and frozen models."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import libsbml
import numpy as np
import pytest
import roadrunner
import torch

from sysid.config import SbmlConfig
from sysid.errors import SysidInputError
from sysid.frozen import load_frozen
from sysid.sbml.compiled import compile_model
from sysid.sbml.perturb import perturb
from sysid.sbml.reader import read_string
from sysid.sbml.simulate import simulate_sbml, write_sbml_dataset

ROOT = Path(__file__).resolve().parents[2]
SHARED = [ROOT / "examples" / "sbml" / name for name in ("BIOMD0000000064.xml", "BIOMD0000000206.xml")]
VOLUME = 2.0


def pathway_sbml(volume: float = VOLUME, extra=None) -> str:
    """Three-step Michaelis-Menten pathway X0 (boundary) -> S1 -> S2 -> S3 -> (sink), in one compartment.

    Exercises a function definition (mm), local parameters, an assignment rule (total = S1 + S2, read by
    step 3 as an inhibitor), a piecewise law and time (the feed switches on at t = 0.05).
    """
    doc = libsbml.SBMLDocument(3, 2)
    m = doc.createModel()
    m.setId("pathway")
    comp = m.createCompartment()
    comp.setId("cell"), comp.setSize(volume), comp.setConstant(True)
    for sid, c0, boundary in (("X0", 2.0, True), ("S1", 0.5, False), ("S2", 0.3, False), ("S3", 0.2, False),
                              ("total", 0.0, False)):
        sp = m.createSpecies()
        sp.setId(sid), sp.setCompartment("cell"), sp.setInitialConcentration(c0)
        sp.setBoundaryCondition(boundary), sp.setHasOnlySubstanceUnits(False), sp.setConstant(False)
    for pid, value in (("Vm", 1.5), ("Km", 0.4), ("Ki", 0.7)):
        p = m.createParameter()
        p.setId(pid), p.setValue(value), p.setConstant(True)
    fd = m.createFunctionDefinition()
    fd.setId("mm")
    fd.setMath(libsbml.parseL3Formula("lambda(V, K, s, V * s / (K + s))"))
    rule = m.createAssignmentRule()
    rule.setVariable("total"), rule.setMath(libsbml.parseL3Formula("S1 + S2"))
    steps = [
        ("feed", "X0", "S1", "cell * piecewise(kf, time > 0.05, kf / 2) * X0", {"kf": 0.8}),
        ("step1", "S1", "S2", "cell * mm(Vm, Km, S1)", {}),
        ("step2", "S2", "S3", "cell * mm(V2, K2, S2)", {"V2": 1.2, "K2": 0.25}),
        ("step3", "S3", None, "cell * mm(V3, K3, S3) / (1 + total / Ki)", {"V3": 0.9, "K3": 0.5}),
    ]
    for rid, sub, prod, formula, local in steps:
        r = m.createReaction()
        r.setId(rid), r.setReversible(False)
        ref = r.createReactant()
        ref.setSpecies(sub), ref.setStoichiometry(1.0), ref.setConstant(True)
        if prod:
            ref = r.createProduct()
            ref.setSpecies(prod), ref.setStoichiometry(1.0), ref.setConstant(True)
        law = r.createKineticLaw()
        law.setMath(libsbml.parseL3Formula(formula))
        for pid, value in local.items():
            lp = law.createLocalParameter()
            lp.setId(pid), lp.setValue(value)
    if extra is not None:
        extra(m)
    return libsbml.writeSBMLToString(doc)


def roadrunner_trajectory(xml: str, species, reactions, t_end=0.5, n=201):
    rr = roadrunner.RoadRunner(xml)
    rr.timeCourseSelections = ["time", *[f"[{s}]" for s in species], *reactions]
    out = np.asarray(rr.simulate(0, t_end, n))
    k = len(species)
    return out[:, 0], out[:, 1 : 1 + k], out[:, 1 + k :]


def assert_rates_match(xml: str, t_end: float) -> None:
    model = compile_model(read_string(xml))
    t, c, rates = roadrunner_trajectory(xml, model.species_ids, model.reaction_ids, t_end)
    mine = model.rates(torch.as_tensor(c), torch.as_tensor(t)).numpy()
    scale = np.abs(rates).max(axis=0) + 1e-300
    assert np.abs(mine - rates).max(axis=0).max() / scale.min() < 1e-9 or np.all(
        np.abs(mine - rates) <= 1e-9 * scale
    )


@pytest.mark.parametrize("path", SHARED, ids=lambda p: p.stem)
def test_rates_match_roadrunner_on_biomodels(path):
    assert_rates_match(path.read_text(), t_end=0.5)


def test_pathway_rates_known_answer_and_roadrunner():
    model = compile_model(read_string(pathway_sbml()))
    assert model.species_ids == ("S1", "S2", "S3")  # boundary X0 and rule-set 'total' are not state species
    c = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64)
    v = model.rates(c, torch.tensor([0.1])).numpy()[0]
    expected = VOLUME * np.array([0.8 * 2.0, 1.5 * 0.5 / 0.9, 1.2 * 0.3 / 0.55, 0.9 * 0.2 / 0.7 / (1 + 0.8 / 0.7)])
    np.testing.assert_allclose(v, expected, rtol=1e-12)
    assert model.rates(c, torch.tensor([0.0])).numpy()[0, 0] == pytest.approx(VOLUME * 0.4 * 2.0)  # piecewise, time
    # concentration/time: the kinetic laws (amount/time) divided by the compartment size
    np.testing.assert_allclose(model.dcdt(c, 0.1).numpy()[0], (model.S @ v) / VOLUME, rtol=1e-12)
    assert_rates_match(pathway_sbml(), t_end=0.5)


def test_rates_are_differentiable_float64():
    model = compile_model(read_string(pathway_sbml()))
    c = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64, requires_grad=True)
    model.rates(c, 0.1)[0, 1].backward()
    # d/dS1 of V * Vm S1 / (Km + S1) = V * Vm Km / (Km + S1)^2
    assert c.grad[0, 0].item() == pytest.approx(VOLUME * 1.5 * 0.4 / 0.9**2, rel=1e-12)


def _event(m):
    ev = m.createEvent()
    ev.setId("pulse"), ev.setUseValuesFromTriggerTime(True)
    trig = ev.createTrigger()
    trig.setMath(libsbml.parseL3Formula("time > 1")), trig.setInitialValue(False), trig.setPersistent(True)
    a = ev.createEventAssignment()
    a.setVariable("S1"), a.setMath(libsbml.parseL3Formula("1"))


def _rate_rule(m):
    m.getParameter("Ki").setConstant(False)
    rule = m.createRateRule()
    rule.setVariable("Ki"), rule.setMath(libsbml.parseL3Formula("0.1"))


def _algebraic(m):
    m.getParameter("Ki").setConstant(False)
    m.createAlgebraicRule().setMath(libsbml.parseL3Formula("Ki - 0.7"))


@pytest.mark.parametrize(("extra", "named"), [(_event, "event 'pulse'"), (_rate_rule, "rate rule for 'Ki'"),
                                              (_algebraic, "algebraic rule")])
def test_unsupported_constructs_are_refused_by_name(extra, named):
    with pytest.raises(SysidInputError, match=named):
        compile_model(read_string(pathway_sbml(extra=extra)))


def test_invalid_sbml_is_one_line():
    with pytest.raises(SysidInputError, match="not valid SBML") as info:
        read_string("<sbml>broken", "broken.xml")
    assert "\n" not in str(info.value)


SMALL = SbmlConfig(n_experiments=2, n_frames=300, delta_t=0.01, lambda_per_type=[0.3, 1.2], seed=3)


@pytest.fixture(scope="module")
def pathway_sim(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sbml")
    path = folder / "pathway.xml"
    path.write_text(pathway_sbml())
    sim = simulate_sbml(path, SMALL)
    out = folder / "data"
    out.mkdir()
    write_sbml_dataset(sim, out)
    return path, sim, out


def test_homeostasis_is_added_with_the_compartment_factor(pathway_sim):
    path, sim, _ = pathway_sim
    truth = sim.truth
    assert truth.eligible.all() and sorted(truth.types.tolist()) == [0, 0, 1]  # balanced, random order
    np.testing.assert_allclose(truth.baselines, [0.5, 0.3, 0.2])
    base = compile_model(path)
    for x, y in zip(sim.concentrations, sim.dcdt, strict=True):
        c = torch.as_tensor(x.astype(np.float64))
        t = torch.arange(len(x), dtype=torch.float64) * SMALL.delta_t
        homeostasis = y - base.dcdt(c, t).numpy()
        # lambda_i (cb_i - c_i) in concentration/time although the compartment has size 2
        np.testing.assert_allclose(homeostasis, truth.lambdas * (truth.baselines - x), rtol=1e-5, atol=1e-6)


def test_dataset_is_consistent_with_roadrunner_trajectories(pathway_sim):
    _, sim, out = pathway_sim
    for k, (x, y) in enumerate(zip(sim.concentrations, sim.dcdt, strict=True)):
        # y is the exact derivative of the recorded trajectory: the trapezoidal rule reproduces each step,
        # except the one across the feed's switch at t = 0.05 (a jump of y)
        step = 0.5 * SMALL.delta_t * (y[1:] + y[:-1])
        off = np.abs(step - np.diff(x, axis=0)).max(axis=1) > 2e-5
        assert off.sum() <= 1 and (not off.any() or np.nonzero(off)[0][0] in (4, 5))
        assert np.load(out / f"x_list_{k}.npy").shape == (SMALL.n_frames + 1, 3, 8)
    truth = json.loads((out / "truth.json").read_text())
    assert truth["species_ids"] == ["S1", "S2", "S3"] and truth["delta_t"] == SMALL.delta_t
    assert (out / "truth_model.xml").read_text().count("sysid_homeostasis_") >= 3
    S = torch.load(out / "stoichiometry.pt").numpy()
    np.testing.assert_allclose(S, np.array([[1, -1, 0, 0], [0, 1, -1, 0], [0, 0, 1, -1]]) / VOLUME)


def test_simulation_is_deterministic(pathway_sim):
    path, sim, _ = pathway_sim
    again = simulate_sbml(path, SMALL)
    assert np.array_equal(again.concentrations[1], sim.concentrations[1])
    assert np.array_equal(again.truth.types, sim.truth.types)


def test_relative_noise(pathway_sim):
    path, sim, _ = pathway_sim
    noisy = simulate_sbml(path, SbmlConfig(**{**SMALL.__dict__, "measurement_noise_level": 0.01}))
    rel = noisy.concentrations[0] / sim.concentrations[0] - 1
    assert 0.008 < rel.std() < 0.012 and abs(rel.mean()) < 1e-3


def test_frozen_sbml_model_matches_the_dataset(pathway_sim):
    path, _, out = pathway_sim
    frozen = load_frozen(path)
    S = torch.load(out / "stoichiometry.pt").numpy()
    np.testing.assert_allclose(frozen.network().S, S)
    x = np.load(out / "x_list_0.npy")[:, :, 3].astype(np.float64)
    y = np.load(out / "y_list_0.npy")[:, :, 0]
    t = torch.arange(len(x), dtype=torch.float64) * SMALL.delta_t
    reaction = frozen.reaction_dcdt(torch.as_tensor(x), t).numpy()
    truth = json.loads((out / "truth.json").read_text())
    h = np.asarray(truth["lambda"]) * (np.asarray(truth["cb"]) - x)
    np.testing.assert_allclose(reaction + h, y, rtol=1e-4, atol=1e-5)


def test_perturb_rate_noise_is_one_factor_per_reaction():
    doc = read_string(pathway_sbml())
    base = compile_model(doc)
    noisy = compile_model(perturb(doc, rate_noise=0.1, param_noise=None, seed=5))
    c = torch.rand(50, 3, dtype=torch.float64) + 0.1
    ratio = (noisy.rates(c, 0.2) / base.rates(c, 0.2)).numpy()
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[0], ratio.shape), rtol=1e-12)
    expected = np.exp(np.random.default_rng(5).normal(0.0, 0.1, size=4))
    np.testing.assert_allclose(ratio[0], expected, rtol=1e-12)


def test_perturb_param_noise_changes_every_kinetic_parameter():
    doc = read_string(pathway_sbml())
    out = perturb(doc, rate_noise=None, param_noise=0.1, seed=5).getModel()
    for pid, value in (("Vm", 1.5), ("Km", 0.4), ("Ki", 0.7)):
        assert out.getParameter(pid).getValue() != value
    assert out.getCompartment("cell").getSize() == VOLUME
    with pytest.raises(SysidInputError, match="exactly one"):
        perturb(doc, rate_noise=0.1, param_noise=0.1, seed=0)


def _cli(*args, cwd):
    from tests.helpers import sysid  # in-process runner of the command line

    with contextlib.chdir(cwd):
        return sysid(*args)


def test_cli_bad_inputs_exit_2_and_write_nothing(tmp_path, pathway_sim):
    (tmp_path / "bad.xml").write_text("<sbml>broken")
    (tmp_path / "event.xml").write_text(pathway_sbml(extra=_event))
    for args in (("simulate", "--sbml", "bad.xml", "--out", "d1"), ("simulate", "--sbml", "event.xml", "--out", "d2"),
                 ("perturb", "event.xml", "--rate-noise", "0.1", "--out", "p.xml")):
        proc = _cli(*args, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().count("\n") == 0 and "error:" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.xml", "event.xml"]


def test_cli_negative_experiment_exit_2(tmp_path):
    def negative(m):  # a constant drain that empties S3 below zero
        r = m.getReaction("step3")
        r.getKineticLaw().setMath(libsbml.parseL3Formula("cell * 5"))

    (tmp_path / "neg.xml").write_text(pathway_sbml(extra=negative))
    (tmp_path / "cfg.yaml").write_text("sbml: {n_frames: 100, delta_t: 0.05, n_experiments: 1}\n")
    proc = _cli("simulate", "--sbml", "neg.xml", "--config", "cfg.yaml", "--out", "d", cwd=tmp_path)
    assert proc.returncode == 2 and "went negative" in proc.stderr, proc.stderr
    assert not (tmp_path / "d").exists()
