"""The game registry (env/spec.py, env/games/): what it holds, that each game's spec matches its
environment, and that a game module adds itself and its config fields without touching another."""

import dataclasses
import sys
import textwrap

import numpy as np
import pytest

from env import config as env_config_module
from env import spec as spec_module
from env.config import EnvConfig
from env.make import make_env
from env.spec import EnvSpec, all_specs, get_spec

GAMES = ("carracing", "doom", "healthgathering")


def test_the_registered_games_and_the_env_section_they_make():
    assert tuple(all_specs()) == GAMES
    fields = [field.name for field in dataclasses.fields(EnvConfig)]
    assert fields == ["name", "max_steps", "carracing_renderer", "doom_skill", "doom_resolution", "healthgathering_skill", "healthgathering_resolution"]
    config = EnvConfig(name="healthgathering")
    assert config.spec is get_spec("healthgathering") and config.action_size == 2
    assert [EnvConfig(name=name).action_size for name in GAMES] == [3, 1, 2]
    with pytest.raises(ValueError, match="env.name='pong': expected one of carracing, doom, healthgathering"):
        _ = EnvConfig(name="pong").action_size


def test_what_each_game_declares():
    carracing, doom, game = (get_spec(name) for name in GAMES)
    assert not carracing.is_discrete and not carracing.held_actions and not carracing.dream_trainable
    assert carracing.renderer_setting == "carracing_renderer" and carracing.setting_choices == {"carracing_renderer": ("fast", "stock")}
    assert doom.action_names == ("noop", "left", "right") and doom.dream_trainable and doom.episode_settings == ("doom_skill",)
    assert (carracing.solved_return, doom.solved_return, game.solved_return) == (900.0, 750.0, None)
    assert game.dream_trainable and len(game.action_names) == 6 and [name for name, _ in game.held_actions] == ["noop", "left", "forward", "forward_left"]
    # each discrete game's held actions map to the action they are named after
    for spec in (doom, game):
        for name, value in spec.held_actions:
            held = np.broadcast_to(np.asarray(value, np.float32), (1, spec.action_size))
            assert spec.action_names[int(spec.game_actions(held)[0])] == name


@pytest.mark.parametrize("name", GAMES)
def test_each_environment_follows_its_spec(name):
    spec = get_spec(name)
    env = make_env(EnvConfig(name=name, max_steps=3))
    try:
        assert env.action_size == spec.action_size
        frame = env.reset(7)
        assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
        np.testing.assert_array_equal(frame, spec.preprocess(env.raw_frame))  # the spec's frame processing is the env's
        steps = [env.step(np.zeros(spec.action_size, np.float32)) for _ in range(3)]
        assert [step[2:] for step in steps] == [(False, False), (False, False), (False, True)]
        np.testing.assert_array_equal(steps[-1][0], spec.preprocess(env.raw_frame))
    finally:
        env.close()


def _spec(**changes) -> EnvSpec:
    values = {"name": "pong", "title": "Pong", "make": None, "action_size": 1, "preprocess": None, "game_actions": None}
    return EnvSpec(**{**values, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"settings": {"speed": dataclasses.field(default=1)}}, "config field 'speed' must be named pong_<field>"),
        ({"setting_choices": {"pong_speed": (1, 2)}}, "'pong_speed' is used but not one of its settings"),
        ({"held_actions": (("up", (1.0,)),)}, "held action 'up' = \\(1.0,\\): expected one float or a list of 1 floats"),
        ({"held_actions": (("up", [1.0, 1.0]),)}, "held action 'up' = \\[1.0, 1.0\\]: expected one float or a list of 1 floats"),
        ({"name": "Pong"}, "name 'Pong' must be a lower-case identifier"),
        ({}, "a game named 'pong' is already registered"),
    ],
)
def test_a_bad_spec_is_refused_naming_its_module(changes, message):
    found = {"pong": _spec()} if not changes else {}
    with pytest.raises(ValueError, match=f"env.games.pong.SPEC: {message}"):
        spec_module._check(_spec(**changes), "env.games.pong", found)


@pytest.fixture
def games_folder(tmp_path, monkeypatch):
    """A games package of our own in place of env/games/, read afresh."""
    package = tmp_path / "my_games"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(spec_module, "GAMES_PACKAGE", "my_games")
    monkeypatch.setattr(spec_module, "_registry", {})
    yield package
    for module in [name for name in sys.modules if name == "my_games" or name.startswith("my_games.")]:
        del sys.modules[module]


def test_one_new_file_adds_a_game_and_its_config_fields(games_folder):
    (games_folder / "pong.py").write_text(
        textwrap.dedent(
            """
            from common.settings import setting
            from env.spec import EnvSpec

            SPEC = EnvSpec(
                name="pong", title="Pong", make=None, action_size=1, preprocess=None, game_actions=None,
                settings={"pong_paddle": setting(3, "paddle width", "pixels")},
            )
            """
        )
    )
    assert tuple(all_specs()) == ("pong",)
    fields = {name: field for name, _, field in env_config_module._env_fields()}
    assert list(fields) == ["name", "max_steps", "pong_paddle"] and fields["pong_paddle"].default == 3
    assert fields["pong_paddle"].metadata["doc"] == "paddle width"
    assert "'pong' (Pong)" in fields["name"].metadata["doc"]


def test_a_module_without_a_spec_is_refused(games_folder):
    (games_folder / "notes.py").write_text("SPECS = None\n")
    with pytest.raises(ValueError, match="my_games.notes defines no SPEC: every module in env/games/ is a game"):
        all_specs()
