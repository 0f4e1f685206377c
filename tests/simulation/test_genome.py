"""Real network topologies: SBML-FBC files and cobra's bundled models as the truth's reaction graph."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sysid.config import Config, NetworkConfig
from sysid.errors import SysidInputError
from sysid.io.dataset import load_dataset, load_truth
from sysid.simulation.genome import build_network, simulate_network
from sysid.simulation.topology import read_topology
from tests.helpers import assert_one_line_error, sysid

libsbml = pytest.importorskip("libsbml")
SHORT = {"n_frames": 200}


def _fbc_model(path, *, internal: bool = True) -> str:
    """A + B -> C, 2 C -> D + A (catalyst-free), D <-> (exchange, uptake allowed), E -> (demand), biomass."""
    doc = libsbml.SBMLDocument(3, 1)
    doc.enablePackage(libsbml.FbcExtension.getXmlnsL3V1V2(), "fbc", True)
    doc.setPackageRequired("fbc", False)
    model = doc.createModel("tiny")
    model.getPlugin("fbc").setStrict(True)
    comp = model.createCompartment()
    comp.setId("c"), comp.setConstant(True), comp.setSize(1.0)
    for sid in ("A", "B", "C", "D", "E", "Z"):  # Z is touched by no kept reaction
        sp = model.createSpecies()
        sp.setId(sid), sp.setCompartment("c"), sp.setConstant(False), sp.setBoundaryCondition(False)
        sp.setHasOnlySubstanceUnits(False)
    for pid, value in (("lb_neg", -10.0), ("zero", 0.0), ("ub", 1000.0)):
        p = model.createParameter()
        p.setId(pid), p.setValue(value), p.setConstant(True)

    def reaction(rid, reactants, products, lower="zero"):
        r = model.createReaction()
        r.setId(rid), r.setReversible(lower != "zero"), r.setFast(False)
        for sid, coef in reactants:
            ref = r.createReactant()
            ref.setSpecies(sid), ref.setStoichiometry(coef), ref.setConstant(True)
        for sid, coef in products:
            ref = r.createProduct()
            ref.setSpecies(sid), ref.setStoichiometry(coef), ref.setConstant(True)
        fbc = r.getPlugin("fbc")
        fbc.setLowerFluxBound(lower), fbc.setUpperFluxBound("ub")

    if internal:
        reaction("R1", [("A", 1), ("B", 1)], [("C", 1)])
        reaction("R2", [("C", 2)], [("D", 1), ("A", 1)])
        reaction("R3", [("D", 0.5)], [("B", 1), ("E", 1)])
    reaction("EX_D", [("D", 1)], [], lower="lb_neg")
    reaction("DM_E", [("E", 1)], [])
    reaction("BIOMASS_tiny", [("A", 1), ("Z", 1)], [("B", 1)])
    libsbml.writeSBMLToFile(doc, str(path))
    return str(path)


def test_topology_roles_and_internal_network(tmp_path):
    topo = read_topology(_fbc_model(tmp_path / "tiny.xml"))
    assert topo.reaction_ids == ("R1", "R2", "R3", "EX_D", "DM_E", "BIOMASS_tiny")
    assert topo.biomass.tolist() == [False] * 5 + [True]
    assert topo.boundary.tolist() == [False, False, False, True, True, False]
    assert topo.uptake.tolist() == [False, False, False, True, False, False]
    genome = build_network(topo)
    assert genome.species_ids == ("A", "B", "C", "D", "E")  # Z only in biomass: dropped
    assert genome.reaction_ids == ("R1", "R2", "R3")
    S = genome.network.S
    np.testing.assert_array_equal(S[:, 1], [1, 0, -2, 1, 0])
    np.testing.assert_array_equal(S[:, 2], [0, 1, 0, -0.5, 1])
    np.testing.assert_array_equal(genome.network.substrates[:, 2], [0, 0, 0, 0.5, 0])


def test_exchanges_kept_as_inflow_and_outflow(tmp_path):
    genome = build_network(read_topology(_fbc_model(tmp_path / "tiny.xml")), "keep")
    assert genome.reaction_ids[3:] == ("EX_D", "DM_E")
    assert genome.roles == ("internal",) * 3 + ("inflow", "outflow")
    S, sub = genome.network.S, genome.network.substrates
    np.testing.assert_array_equal(S[:, 3], [0, 0, 0, 1, 0])  # uptake of D: constant inflow -> D
    np.testing.assert_array_equal(sub[:, 3], 0)
    np.testing.assert_array_equal(S[:, 4], [0, 0, 0, 0, -1])  # demand of E: first-order outflow E ->
    np.testing.assert_array_equal(sub[:, 4], [0, 0, 0, 0, 1])


def test_simulated_data_follow_scaled_mass_action(tmp_path):
    cfg = Config().replace("simulation", n_frames=300, n_metabolite_types=2, homeostatic_lambda_per_type=(0.01, 0.02))
    sim = simulate_network(_fbc_model(tmp_path / "tiny.xml"), cfg)
    S, sub = sim.network.S.astype(np.float64), sim.network.substrates.astype(np.float64)
    # stored log_k are plain mass-action constants: log k_drawn - order * log10(c_ref), k_drawn in 10^[-2, -1]
    order = sub.sum(0)
    drawn = sim.truth.log_k.astype(np.float64) + order * np.log10(NetworkConfig().reference_concentration)
    assert np.all((drawn >= -2 - 1e-6) & (drawn <= -1 + 1e-6))
    c = sim.concentrations[:-1].astype(np.float64)
    v = 10.0 ** sim.truth.log_k * np.prod(c[:, :, None] ** sub[None], axis=1)
    lam, cb = sim.truth.lambdas[sim.truth.types], sim.truth.baselines[sim.truth.types]
    np.testing.assert_allclose(sim.dcdt[:-1], -lam * (c - cb) + v @ S.T, rtol=1e-4, atol=1e-6)
    assert sorted(np.bincount(sim.truth.types).tolist()) == [2, 3]
    assert np.all(sim.concentrations > 0)


def test_cli_textbook_writes_ids(tmp_path):
    pytest.importorskip("cobra")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("simulation:\n  n_frames: 100\n")
    out = tmp_path / "data"
    proc = sysid("simulate", "--network", "cobra:textbook", "--config", cfg, "--out", out)
    assert proc.returncode == 0, proc.stderr
    data, truth = load_dataset(out), load_truth(out)
    assert data.network.S.shape == (72, 74)
    meta = json.loads((out / "truth.json").read_text())
    assert len(meta["species_ids"]) == 72 and len(meta["reaction_ids"]) == 74
    assert "R_Biomass_Ecoli_core" not in meta["reaction_ids"] and "R_PGI" in meta["reaction_ids"]
    assert not any(r.startswith("R_EX_") for r in meta["reaction_ids"])
    assert truth is not None and len(truth.log_k) == 74


def test_bad_networks_give_one_line(tmp_path):
    pytest.importorskip("cobra")
    cases = [("cobra:no_such_model", "textbook"), (_fbc_model(tmp_path / "b.xml", internal=False), "no species")]
    empty = libsbml.SBMLDocument(3, 1)
    empty.createModel("empty")
    libsbml.writeSBMLToFile(empty, str(tmp_path / "empty.xml"))
    cases.append((str(tmp_path / "empty.xml"), "no reactions"))
    for net, word in cases:
        out = tmp_path / "out"
        assert_one_line_error(sysid("simulate", "--network", net, "--out", out), word)
        assert not out.exists()


def test_divergence_is_one_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("simulation:\n  n_frames: 50\n  log_k_min: 3\n  log_k_max: 4\nnetwork:\n  max_concentration: 100\n")
    out = tmp_path / "out"
    proc = sysid("simulate", "--network", _fbc_model(tmp_path / "t.xml"), "--config", cfg, "--out", out)
    assert_one_line_error(proc, "simulation")
    assert not out.exists()
    with pytest.raises(SysidInputError, match="exchanges"):
        NetworkConfig(exchanges="open")
