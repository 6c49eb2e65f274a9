"""Property tests: whatever a user types as ``--set`` overrides, architecture strings or actions, the outcome is
success or an rlnas error with a one-line message, never another exception type (and never a traceback)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlnas.config import ConfigError, EnvPreset, load_env_preset, to_dict
from rlnas.envs.child_net import ChildNetEnv

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def dotted_keys(data: object, prefix: str = "") -> list[str]:
    """Every key of a preset as ``--set`` spells it (``space.stages.0.width``)."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    keys = []
    for name, value in items:
        key = f"{prefix}{name}"
        keys += [key, *dotted_keys(value, f"{key}.")]
    return keys


DIGITS = to_dict(load_env_preset("digits"))
KEYS = [*dotted_keys(DIGITS), "evaluator", "table.path", "supernet.steps", "reward.function"]
TRICKY_VALUES = [
    "1e-3", "1e6", "-1", "0", "1e999", ".nan", "-.inf", "null", "~", "yes", "[]", "{}", "[1", "{a: 1", "'", '"',
    "!!python/object/apply:os.system ['true']", "*anchor", "&a [1, *a]", "0x10", "1_000", "3.5", "10000000",
    "custom", "cuda", "cuda:7", "table", "tabular", "supernet", "conv3x3", "[conv3x3, conv3x3]", "[0.5, 2]",
    "os:system", ".relative:f", ":", "builtins:len", "\t", "a: b: c", "- 1\n- 2", "%TAG", "@", "`",
]  # fmt: skip
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=20))
values = st.one_of(st.sampled_from(TRICKY_VALUES), st.text(max_size=30), st.integers().map(str),
                   st.floats().map(repr))  # fmt: skip
overrides = st.lists(st.tuples(keys, values).map("=".join) | st.text(max_size=20), min_size=1, max_size=3)


@FAST
@given(overrides)
def test_any_set_overrides_load_or_give_a_one_line_config_error(override_list):
    try:
        preset = load_env_preset(DIGITS, override_list)
    except ConfigError as err:
        assert str(err) and "\n" not in str(err)
    else:
        assert isinstance(preset, EnvPreset)


@pytest.fixture(scope="module")
def env(_digits_preset):
    from conftest import FakeEvaluator

    from rlnas.envs.evaluators import space_for

    env = ChildNetEnv(_digits_preset, evaluator=FakeEvaluator(space_for(_digits_preset)))
    yield env
    env.close()


def layer(ops: list[str]) -> st.SearchStrategy[str]:
    keep = st.one_of(st.sampled_from(["0.25", "0.5", "1.0", "1", "0", "nan", "inf", "-1", "1e-3", ""]), st.text())
    return st.tuples(st.one_of(st.sampled_from(ops), st.text(max_size=8)), st.sampled_from(["@", "", "@@"]), keep).map(
        "".join
    )


@FAST
@given(data=st.data())
def test_any_architecture_string_parses_or_gives_a_one_line_value_error(env, data):
    ops = [*env.space.operators, "conv7x7", "Skip"]
    text = data.draw(st.one_of(st.lists(layer(ops), max_size=6).map("|".join), st.text()))
    try:
        arch = env.space.parse(text)
    except ValueError as err:
        assert str(err) and "\n" not in str(err)
    else:
        assert env.space.parse(str(arch)) == arch


scalars = st.one_of(
    st.integers(-3, 7), st.integers(), st.floats(), st.booleans(), st.text(max_size=3), st.none(),
    st.sampled_from([2.0, 1.9, -0.0, float("nan"), 1e30]),
)  # fmt: skip
actions = st.one_of(
    st.lists(scalars, max_size=10),
    st.lists(st.integers(0, 2), min_size=8, max_size=8),
    st.lists(st.integers(0, 2), min_size=8, max_size=8).map(lambda a: np.array(a, dtype=np.float32)),
    st.lists(st.lists(st.integers(0, 2), max_size=3), max_size=4),
    scalars,
)


@FAST
@given(actions)
def test_any_action_steps_or_gives_a_one_line_value_error(env, action):
    try:
        _, reward, terminated, _, info = env.step(action)
    except ValueError as err:
        assert str(err) and "\n" not in str(err)
    else:
        assert terminated and np.isfinite(reward) and info["status"] == "ok"
        assert [float(a) for a in np.asarray(action).reshape(-1)] == [float(a) for a in env.space.encode(
            env.space.decode(action))]  # fmt: skip
