"""EnvSpec: everything the project knows about one game, and the registry of games.

Each game is one module in env/games/ that defines `SPEC = EnvSpec(...)`; every module
there is found and registered when the registry is first read (`all_specs`), so adding a
game adds one file (docs/adding-an-environment.md). Code outside env/games/ never tests
env.name: it asks the spec (`get_spec(name)`, or `EnvConfig.spec`).

A spec's per-game config fields (`settings`) become fields of the env config section
(env/config.py), each named <game name>_<field> so that two games can never claim the same
one: a new game adds its own fields without touching another game's.
"""

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

import numpy as np

GAMES_PACKAGE = "env.games"


@dataclasses.dataclass(frozen=True, eq=False)
class EnvSpec:
    """One game: how to make it and what the rest of the pipeline needs to know about it."""

    # env.name, and the prefix of every config field of this game (<name>_<field>).
    name: str
    # For people: e.g. "ViZDoom TakeCover".
    title: str
    # EnvConfig -> the environment: reset(seed) -> frame (64, 64, 3) uint8; step(action (A,)) ->
    # (frame, reward, terminated, truncated); raw_frame; action_size; close(). Imports its engine
    # when called, so reading the registry stays cheap.
    make: Callable[[Any], Any]
    # A: the number of C's outputs, each in [-1, 1] (tanh).
    action_size: int
    # The frame processing the environment applies: its full RGB frame -> (64, 64, 3) uint8 for V.
    preprocess: Callable[[np.ndarray], np.ndarray]
    # C's outputs -> the game's action (the env applies it at each step; M and the rollouts keep the
    # continuous outputs). (N, A) -> (N, ...) for a continuous game, (N,) int codes for a discrete one.
    game_actions: Callable[[np.ndarray], np.ndarray]
    # Discrete games: the name of each action code game_actions returns (the fidelity report's action
    # shares). Empty: the game's actions are continuous.
    action_names: tuple[str, ...] = ()
    # The random data-collection policy: (generate_config, rng, num_steps, action_size) -> actions
    # (num_steps, A) float32 in [-1, 1]. None: env/policies.py's random_actions (generate.policy).
    random_actions: Callable[..., np.ndarray] | None = None
    # Scripted policies for the fidelity report: (name, the output held every step: one float for every
    # output, or a list of A floats). Empty: the report skips them.
    held_actions: tuple[tuple[str, float | list[float]], ...] = ()
    # Whether C can be trained in M's dream without M's reward head: the game's reward is +1 per step
    # survived, which the dream reproduces by counting steps until M's done head fires.
    dream_trainable: bool = False
    # The mean return over 100 episodes at which the game counts as solved (None: no such line).
    solved_return: float | None = None
    # The config field naming the renderer, recorded in evaluate's summary.json (None: no choice).
    renderer_setting: str | None = None
    # This game's config fields that change its episodes (returns, lengths) for the same actions and
    # seeds; they key the random baseline's saved results (controller/evaluate.py).
    episode_settings: tuple[str, ...] = ()
    # This game's config fields: name -> common.settings.setting(...), each name <name>_<field>.
    settings: dict[str, dataclasses.Field] = dataclasses.field(default_factory=dict)
    # Allowed values of this game's fields that have a fixed set of them (checked for every config).
    setting_choices: dict[str, tuple] = dataclasses.field(default_factory=dict)

    @property
    def is_discrete(self) -> bool:
        return bool(self.action_names)


_registry: dict[str, EnvSpec] = {}


def _check(spec: EnvSpec, module: str, found: dict[str, EnvSpec]) -> None:
    where = f"{module}.SPEC"
    if not isinstance(spec, EnvSpec):
        raise TypeError(f"{where} is a {type(spec).__name__}, expected an env.spec.EnvSpec")
    if not spec.name.isidentifier() or spec.name != spec.name.lower():
        raise ValueError(f"{where}: name {spec.name!r} must be a lower-case identifier (it prefixes the game's config fields)")
    if spec.name in found:
        raise ValueError(f"{where}: a game named {spec.name!r} is already registered")
    for name in (*spec.settings, *spec.setting_choices, *spec.episode_settings, *([spec.renderer_setting] if spec.renderer_setting else [])):
        if not name.startswith(f"{spec.name}_"):
            raise ValueError(f"{where}: config field {name!r} must be named {spec.name}_<field>")
        if name not in spec.settings:
            raise ValueError(f"{where}: {name!r} is used but not one of its settings ({', '.join(spec.settings) or 'none'})")
    for name, value in spec.held_actions:
        # a list, not a tuple: the value is part of the fidelity report and of its parts' keys, compared with their JSON copies
        if not (isinstance(value, float) or (isinstance(value, list) and len(value) == spec.action_size and all(isinstance(v, float) for v in value))):
            raise ValueError(f"{where}: held action {name!r} = {value!r}: expected one float or a list of {spec.action_size} floats")


def all_specs() -> dict[str, EnvSpec]:
    """Every registered game by name, in name order (every module of env/games/, imported once)."""
    if not _registry:
        package = importlib.import_module(GAMES_PACKAGE)
        found = {}
        for module_info in pkgutil.iter_modules(package.__path__):
            module_name = f"{GAMES_PACKAGE}.{module_info.name}"
            spec = getattr(importlib.import_module(module_name), "SPEC", None)
            if spec is None:
                raise ValueError(f"{module_name} defines no SPEC: every module in env/games/ is a game (docs/adding-an-environment.md)")
            _check(spec, module_name, found)
            found[spec.name] = spec
        _registry.update(sorted(found.items()))
    return dict(_registry)


def get_spec(name: str) -> EnvSpec:
    """The game called `name` (env.name), or a ValueError listing the games there are."""
    specs = all_specs()
    if name not in specs:
        raise ValueError(f"env.name={name!r}: expected one of {', '.join(specs)}")
    return specs[name]
