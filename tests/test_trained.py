"""The trained controllers shipped in agents/trained/: each loads by name, fits its preset and proposes children."""

from __future__ import annotations

import pytest

import rlnas
from rlnas.config import load_env_preset
from rlnas.envs.evaluators import space_for
from rlnas.presets import preset_dirs, trained_controllers

SHIPPED = trained_controllers()


def test_controllers_are_shipped_and_described():
    assert len(SHIPPED) >= 2
    readme = next(d / "trained" / "README.md" for d in preset_dirs("agents"))
    text = readme.read_text()
    assert all(f"`{name}`" in text for name in SHIPPED), "every shipped controller needs its README line"


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_controller_proposes_children_of_its_presets_space(name):
    controller = rlnas.load_controller(name)
    preset = load_env_preset(controller.meta["env_preset"])
    controller.check_space(space_for(preset))
    proposals = controller.propose(3)
    assert len({str(p.arch) for p in proposals}) == 3
    for proposal in proposals:
        controller.space.validate(proposal.arch)
    assert controller.meta["trained"]["evaluations"] > 0
