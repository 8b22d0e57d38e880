"""A ViZDoom scenario behind the project's small environment interface.

Paper, section 5: ViZDoom games are played through the raw vizdoom.DoomGame API at the
smallest resolution, ~4x faster than the gymnasium wrapper (docs/design.md section 8): the
scenario's .cfg, RGB frames, no window, no sound, no HUD, 1 tic per step, the skill and
resolution the game's spec passes (env/games/). The step cap is ours (env.max_steps; the
paper's 2100), not the scenario's episode_timeout. The game is started once and reused:
each reset is a new seeded episode. Which buttons a step presses is the game's choice
(`buttons`, from C's outputs), and so is the frame processing (`preprocess`).
"""

import os
import shutil
import tempfile
from collections.abc import Callable

import numpy as np
import vizdoom

TICS_PER_STEP = 1


class VizdoomEnv:
    """reset(seed) -> frame (64,64,3) uint8; step(a (A,)) -> (frame, reward, terminated, truncated).

    scenario: a .cfg in vizdoom.scenarios_path; buttons: C's outputs (A,) -> the button states of
    the cfg's available_buttons; field_prefix: the config field prefix named in errors (e.g. "env.doom_");
    death_penalty: replaces the cfg's when given (0: the reward is the cfg's living reward only).
    """

    def __init__(
        self,
        scenario: str,
        action_size: int,
        buttons: Callable[[np.ndarray], list[int]],
        preprocess: Callable[[np.ndarray], np.ndarray],
        max_steps: int,
        skill: int,
        resolution: str,
        field_prefix: str,
        death_penalty: float | None = None,
    ):
        self.action_size = action_size
        self.buttons = buttons
        self.preprocess = preprocess
        self.max_steps = max_steps
        try:
            screen_resolution = getattr(vizdoom.ScreenResolution, resolution)
        except AttributeError:
            raise ValueError(f"{field_prefix}resolution={resolution!r} is not a vizdoom.ScreenResolution name (e.g. RES_160X120)") from None
        game = vizdoom.DoomGame()
        game.load_config(os.path.join(vizdoom.scenarios_path, scenario))
        game.set_screen_resolution(screen_resolution)
        game.set_screen_format(vizdoom.ScreenFormat.RGB24)
        game.set_window_visible(False)
        game.set_sound_enabled(False)
        game.set_render_hud(False)  # nothing to crop: the frame is all view
        game.set_doom_skill(skill)
        game.set_episode_timeout(0)  # the step cap is ours
        if death_penalty is not None:
            game.set_death_penalty(death_penalty)
        game.set_mode(vizdoom.Mode.PLAYER)  # synchronous: the game waits for each action
        # ViZDoom writes _vizdoom.ini to the working folder and creates ./_vizdoom at init; games
        # starting together in several processes race on both ("File exists", a dead worker).
        # Each game gets a private ini, and the folder exists before any game looks for it.
        self._config_folder = tempfile.mkdtemp(prefix="vizdoom-")
        game.set_doom_config_path(os.path.join(self._config_folder, "_vizdoom.ini"))
        os.makedirs("_vizdoom", exist_ok=True)
        game.init()
        self.game = game  # the vizdoom.DoomGame itself (benchmarks compare against it)
        self.raw_frame: np.ndarray | None = None
        self.steps = 0

    def reset(self, seed: int) -> np.ndarray:
        """A new episode; the same seed gives the same episode for the same actions."""
        self.game.set_seed(int(seed) % 2**32)
        self.game.new_episode()
        self.steps = 0
        self.raw_frame = self.game.get_state().screen_buffer
        return self.preprocess(self.raw_frame)

    def step(self, action) -> tuple[np.ndarray, float, bool, bool]:
        reward = self.game.make_action(self.buttons(action), TICS_PER_STEP)
        self.steps += 1
        terminated = self.game.is_episode_finished()  # the player died
        if not terminated:
            self.raw_frame = self.game.get_state().screen_buffer
        # After death there is no new state: the last frame is repeated.
        truncated = not terminated and self.steps >= self.max_steps
        return self.preprocess(self.raw_frame), float(reward), bool(terminated), truncated

    def close(self) -> None:
        self.game.close()
        shutil.rmtree(self._config_folder, ignore_errors=True)
