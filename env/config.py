"""Config sections for the real environments and random-policy data collection."""

import dataclasses

from common.settings import setting


@dataclasses.dataclass
class EnvConfig:
    name: str = setting("carracing", "environment: 'carracing' (gymnasium CarRacing-v3) or 'doom' (ViZDoom TakeCover)")
    frame_size: int = setting(64, "side of the square RGB frame given to V", "pixels", "paper, section 3")
    max_steps: int = setting(1000, "hard cap on episode length (CarRacing-v3 truncates at 1000 itself)", "steps", "paper, appendix (Doom 2100)")
    carracing_renderer: str = setting(
        "fast",
        "CarRacing-v3 renderer: 'fast' (env/carracing_fast.py, the same frames, rewards and episode ends as gymnasium's, about 2.7x the steps/s) "
        "or 'stock' (gymnasium's own)",
        "",
        "docs/design.md section 8",
        locked=False,
    )
    doom_skill: int = setting(4, "ViZDoom difficulty; today's 4 behaves like the original setup's 5", "level 1-5", "docs/design.md section 8")
    doom_resolution: str = setting(
        "RES_160X120", "ViZDoom screen resolution (the smallest is ~4x faster than 320x240)", "vizdoom.ScreenResolution name", "docs/design.md section 8"
    )

    @property
    def action_size(self) -> int:
        """Controller outputs: steer, gas, brake for CarRacing; one value for Doom."""
        return {"carracing": 3, "doom": 1}[self.name]


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
