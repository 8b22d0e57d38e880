"""Config sections for the real environments and random-policy data collection."""

import dataclasses

from common.settings import setting
from env.spec import EnvSpec, all_specs, get_spec


def _env_fields() -> list[tuple[str, type, dataclasses.Field]]:
    """The section's fields: the game's name and step cap, then every game's own fields (env/games/)."""
    specs = all_specs()
    games = ", ".join(f"{name!r} ({spec.title})" for name, spec in specs.items())
    shared = {
        "name": setting("carracing", f"environment, one of the games in env/games/: {games}"),
        "max_steps": setting(1000, "hard cap on episode length (CarRacing-v3 truncates at 1000 itself)", "steps", "paper, appendix (Doom 2100)"),
    }
    fields = []
    for name, field in [*shared.items(), *(item for spec in specs.values() for item in spec.settings.items())]:
        if any(name == existing for existing, _, _ in fields):
            raise ValueError(f"env.{name} is defined twice (a game's field must not repeat a shared one)")
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        # a copy: dataclass creation writes into the Field it is given, and the spec's stays the game's own
        fields.append((name, type(default), dataclasses.field(default=field.default, default_factory=field.default_factory, metadata=field.metadata)))
    return fields


class _EnvConfigMethods:
    @property
    def spec(self) -> EnvSpec:
        """The game env.name names (env/spec.py)."""
        return get_spec(self.name)

    @property
    def action_size(self) -> int:
        """C's outputs, from the game's spec (3 CarRacing, 1 TakeCover, 2 Health Gathering)."""
        return self.spec.action_size


# Built from the registered games, so a game's fields (carracing_renderer, doom_skill, ...) are
# defined in its own module and a new game adds its own without touching the others (env/spec.py).
EnvConfig = dataclasses.make_dataclass("EnvConfig", _env_fields(), bases=(_EnvConfigMethods,))
EnvConfig.__module__ = __name__
EnvConfig.__doc__ = "Config section 'env': which game, its step cap, and every game's own fields (<game>_<field>)."


@dataclasses.dataclass
class GenerateConfig:
    num_rollouts: int = setting(10000, "random-policy episodes to collect", "episodes", "paper, section 4.1 / 4.4")
    base_seed: int = setting(0, "episode i is collected with seed base_seed + i", "seed")
    num_workers: int = setting(0, "collection processes (0: one per core)", "processes", locked=False)
    policy: str = setting(
        "brownian", "random policy: 'brownian' (smooth random actions) or 'hold' (a ~ U[-1,1] held for a few steps)", "", "paper, section 4.1 / authors' code"
    )
    brownian_scale: float = setting(0.1, "standard deviation of each Brownian action increment", "action units per step")
    brownian_drive_bias: float = setting(
        1.0,
        "CarRacing 'brownian' policy: each episode draws a drive bias from U[0, this], added to the gas output and subtracted from the brake "
        "output, so some episodes crawl along the start of the track and others drive off across the map",
        "action units",
    )
    hold_min_steps: int = setting(1, "shortest hold of a 'hold' action", "steps", "authors' code (Doom)")
    hold_max_steps: int = setting(10, "longest hold of a 'hold' action", "steps", "authors' code (Doom)")
    min_episode_steps: int = setting(0, "episodes of this many steps or fewer are dropped (Doom 100)", "steps", "authors' code (Doom)")
