"""Search spaces: action/string round trips, parse errors, fingerprints, and every operator at every slot."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlnas.config import ConfigError, SpaceConfig, StageConfig
from rlnas.pruning import build_model
from rlnas.space import Arch, SearchSpace
from rlnas.space.ops import OPERATORS

# ------------------------------------------------------------------------------------------ random spaces


@st.composite
def spaces(draw) -> SearchSpace:
    operators = draw(st.lists(st.sampled_from(sorted(OPERATORS)), min_size=1, max_size=len(OPERATORS), unique=True))
    keeps = draw(
        st.lists(
            st.floats(min_value=0.0, max_value=1.0, exclude_min=True, allow_nan=False), min_size=1, max_size=5
        ).map(lambda ks: list(dict.fromkeys(ks)))
    )
    stages = draw(
        st.lists(
            st.builds(
                StageConfig,
                layers=st.integers(1, 3),
                width=st.integers(1, 32),
                stride=st.sampled_from([1, 2]),
            ),
            min_size=1,
            max_size=3,
        )
    )
    config = SpaceConfig(
        stem_width=draw(st.integers(1, 16)),
        stages=tuple(stages),
        operators=tuple(operators),
        keep_ratios=tuple(keeps),
    )
    return SearchSpace(config, (draw(st.sampled_from([1, 3])), 8, 8), draw(st.integers(2, 100)))


@st.composite
def space_and_action(draw) -> tuple[SearchSpace, np.ndarray]:
    space = draw(spaces())
    action = [draw(st.integers(0, n - 1)) for n in space.nvec]
    return space, np.array(action, dtype=np.int64)


@settings(max_examples=150, deadline=None)
@given(space_and_action())
def test_action_arch_string_round_trip(case):
    space, action = case
    arch = space.decode(action)
    assert len(arch.ops) == len(arch.keeps) == space.num_layers
    assert arch.ops == tuple(space.operators[i] for i in action[0::2])
    assert arch.keeps == tuple(space.keep_ratios[i] for i in action[1::2])
    text = str(arch)
    assert text.count("|") == space.num_layers - 1
    again = Arch.parse(text)
    assert again == arch
    assert space.parse(text) == arch
    np.testing.assert_array_equal(space.encode(again), action)
    assert space.encode(again).dtype == np.int64


@settings(max_examples=50, deadline=None)
@given(spaces(), st.integers(0, 2**32 - 1))
def test_sampled_architectures_belong_to_the_space(space, seed):
    arch = space.sample(np.random.default_rng(seed))
    space.validate(arch)
    assert space.decode(space.encode(arch)) == arch


def test_decode_refuses_actions_that_do_not_fit(tiny_space):
    good = [0, 0] * tiny_space.num_layers
    tiny_space.decode(good)
    with pytest.raises(ValueError, match="does not fit"):
        tiny_space.decode(good[:-1])
    with pytest.raises(ValueError, match="does not fit"):
        tiny_space.decode([len(tiny_space.operators), *good[1:]])
    with pytest.raises(ValueError, match="does not fit"):
        tiny_space.decode([0, -1, *good[2:]])


def test_size_and_nvec_match_the_declaration(tiny_space):
    n_ops, n_keeps = len(OPERATORS), 3
    assert tiny_space.num_layers == 4
    assert tiny_space.nvec == [n_ops, n_keeps] * 4
    assert tiny_space.size == (n_ops * n_keeps) ** 4


def test_slots_follow_the_stages(tiny_space):
    # stem 4 -> stage 0 (stride 1, width 6, 2 layers) -> stage 1 (stride 2, width 10, 2 layers)
    got = [(s.stage, s.c_in, s.c_out, s.stride) for s in tiny_space.slots]
    assert got == [(0, 4, 6, 1), (0, 6, 6, 1), (1, 6, 10, 2), (1, 10, 10, 1)]
    assert [s.index for s in tiny_space.slots] == [0, 1, 2, 3]


# ------------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "layer"),
    [
        ("", 0),
        ("conv3x3", 0),
        ("conv3x3@", 0),
        ("@0.5", 0),
        ("conv3x3@half", 0),
        ("conv3x3@0.5|skip", 1),
        ("conv3x3@0.5|skip@1.0|", 2),
        ("conv3x3@0.5||skip@1.0", 1),
        ("conv3x3:0.5", 0),
    ],
)
def test_arch_parse_errors_name_the_layer_and_the_expected_form(text, layer):
    with pytest.raises(ValueError, match=rf"layer {layer} of architecture") as info:
        Arch.parse(text)
    assert "operator@keep_ratio" in str(info.value)


def test_arch_parse_accepts_integer_keeps_and_surrounding_space():
    assert Arch.parse(" skip@1|conv3x3@0.25\n") == Arch(("skip", "conv3x3"), (1.0, 0.25))


def test_space_parse_rejects_an_operator_not_in_the_space(tiny_space):
    text = "conv3x3@1.0|skip@0.5|conv7x7@0.5|skip@1.0"
    with pytest.raises(ValueError, match=r"layer 2: operator 'conv7x7'") as info:
        tiny_space.parse(text)
    assert "sep3x3" in str(info.value)


def test_space_parse_rejects_a_keep_ratio_not_in_the_space(tiny_space):
    with pytest.raises(ValueError, match=r"layer 1: keep-ratio 0.75") as info:
        tiny_space.parse("conv3x3@1.0|skip@0.75|skip@0.5|skip@1.0")
    assert "0.25" in str(info.value)


def test_space_parse_rejects_the_wrong_number_of_layers(tiny_space):
    with pytest.raises(ValueError, match=r"3 layers; this space has 4"):
        tiny_space.parse("conv3x3@1.0|skip@0.5|skip@0.5")


def test_build_model_refuses_a_foreign_architecture(tiny_space):
    with pytest.raises(ValueError, match="layer 0"):
        build_model(tiny_space, Arch(("conv9x9",) * 4, (1.0,) * 4))


# --------------------------------------------------------------------------------------------- fingerprints


def _mutations() -> dict[str, object]:
    """One change per declaration field (and per stage field); each must change the fingerprint."""

    def stage(field: str, value: int):
        def change(d: dict) -> None:
            d["stages"][1][field] = value

        return change

    def setter(key: str, value):
        def change(d: dict) -> None:
            d[key] = value

        return change

    return {
        "input_shape": setter("input_shape", [3, 8, 8]),
        "input_size": setter("input_shape", [1, 16, 16]),
        "num_classes": setter("num_classes", 11),
        "stem_width": setter("stem_width", 5),
        "stem_stride": setter("stem_stride", 2),
        "stages.layers": stage("layers", 3),
        "stages.width": stage("width", 13),
        "stages.stride": stage("stride", 1),
        "stages.count": lambda d: d["stages"].append({"layers": 1, "width": 16, "stride": 2}),
        "operators": lambda d: d["operators"].pop(),
        "operators.order": lambda d: d["operators"].reverse(),
        "keep_ratios": setter("keep_ratios", [0.25, 0.75, 1.0]),
        "keep_ratios.order": lambda d: d["keep_ratios"].reverse(),
    }


def test_fingerprint_survives_a_declaration_round_trip(tiny_space):
    rebuilt = SearchSpace.from_declaration(tiny_space.declaration())
    assert rebuilt.fingerprint == tiny_space.fingerprint
    assert rebuilt.declaration() == tiny_space.declaration()
    assert rebuilt.slots == tiny_space.slots and rebuilt.nvec == tiny_space.nvec


def test_equal_declarations_have_equal_fingerprints(tiny_space):
    twin = SearchSpace(copy.deepcopy(tiny_space.config), (1, 8, 8), 10)
    assert twin is not tiny_space
    assert twin.fingerprint == tiny_space.fingerprint
    # integer keep-ratios (as YAML may give them) describe the same space once loaded
    declaration = tiny_space.declaration()
    declaration["keep_ratios"] = [0.25, 0.5, 1]
    assert SearchSpace.from_declaration(declaration).fingerprint == tiny_space.fingerprint


@pytest.mark.parametrize("mutation", list(_mutations()))
def test_fingerprint_changes_with_every_declared_field(tiny_space, mutation):
    declaration = copy.deepcopy(tiny_space.declaration())
    _mutations()[mutation](declaration)
    assert declaration != tiny_space.declaration(), "the mutation did not change anything"
    changed = SearchSpace.from_declaration(declaration)
    assert changed.fingerprint != tiny_space.fingerprint


def test_every_declaration_field_has_a_fingerprint_test(tiny_space):
    covered = {name.split(".")[0] for name in _mutations()} | {"format_version"}
    covered.discard("input_size")
    assert set(tiny_space.declaration()) == covered


def test_unknown_declaration_version_is_refused(tiny_space):
    declaration = tiny_space.declaration()
    declaration["format_version"] = 999
    with pytest.raises(ConfigError, match="999"):
        SearchSpace.from_declaration(declaration)


# -------------------------------------------------------------------------------- operators at every slot


@pytest.mark.parametrize("op", list(OPERATORS))
def test_every_operator_builds_and_runs_at_every_slot(tiny_space, op):
    torch.manual_seed(0)
    batch = 3
    height = tiny_space.input_shape[1] // tiny_space.config.stem_stride
    for slot in tiny_space.slots:
        layer = OPERATORS[op](slot.c_in, slot.c_out, slot.stride).eval()
        out = layer(torch.randn(batch, slot.c_in, height, height))
        height = -(-height // slot.stride)  # ceil: "same" padding
        assert out.shape == (batch, slot.c_out, height, height), f"slot {slot.index}"
        assert torch.isfinite(out).all()

    model = build_model(tiny_space, tiny_space.uniform(op, 1.0))
    for mode in (model.train, model.eval):
        mode()
        logits = model(torch.randn(batch, *tiny_space.input_shape))
        assert logits.shape == (batch, tiny_space.num_classes)
        assert torch.isfinite(logits).all()
    assert model.arch == str(tiny_space.uniform(op, 1.0))


def test_model_json_rebuilds_the_same_space(tiny_space):
    import json

    arch = tiny_space.uniform("sep3x3", 0.5)
    model = build_model(tiny_space, str(arch))
    data = json.loads(model.arch_json())
    assert data["arch"] == str(arch)
    assert SearchSpace.from_declaration(data["space"]).fingerprint == tiny_space.fingerprint


# ------------------------------------------------------------------------------------------ equivalent children


def test_identity_layers_move_to_the_end_of_their_run_with_the_widest_keep():
    stages = (StageConfig(layers=3, width=8, stride=2), StageConfig(layers=3, width=16, stride=2))
    space = SearchSpace(SpaceConfig(stem_width=4, stages=stages, operators=("skip", "conv3x3"),
                                    keep_ratios=(0.5, 1.0)), (3, 8, 8), 10)  # fmt: skip
    arch = space.parse("skip@0.5|skip@0.5|conv3x3@0.5|skip@0.5|conv3x3@1.0|skip@0.5")
    # a skip where the shape changes is a 1x1 projection (pruned by its keep-ratio): it stays as it is
    assert str(space.canonical(arch)) == "skip@0.5|conv3x3@0.5|skip@1.0|skip@0.5|conv3x3@1.0|skip@1.0"
    assert space.canonical_action(space.encode(arch)) == tuple(space.encode(space.canonical(arch)))
    with pytest.raises(ValueError, match="does not fit"):
        space.canonical_action([0, 0])


@settings(max_examples=60, deadline=None)
@given(space_and_action())
def test_the_representative_builds_the_same_network(case):
    space, action = case
    canonical = space.canonical_action(action)
    assert space.canonical_action(canonical) == canonical
    original = build_model(space, space.decode(action)).eval()
    representative = build_model(space, space.decode(canonical)).eval()
    # identity layers hold no tensors, and the other layers keep their order: the weights carry over one to one
    weights = dict(zip(representative.state_dict(), original.state_dict().values(), strict=True))
    representative.load_state_dict(weights)
    x = torch.randn(2, *space.input_shape)
    torch.testing.assert_close(representative(x), original(x))
