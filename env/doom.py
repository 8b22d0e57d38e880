"""ViZDoom TakeCover behind the project's small environment interface.

Paper, section 5: the agent only moves left or right to dodge fireballs;
reward +1 per step survived. We use the raw vizdoom.DoomGame API at the
smallest resolution, ~4x faster than the gymnasium wrapper (docs/design.md
section 8): the scenario's take_cover.cfg, RGB frames, no window, no sound,
no HUD, 1 tic per step, skill env_config.doom_skill (default 4). The game has
no time-out of its own; we truncate at env_config.max_steps (paper: 2100).
The game is started once and reused: each reset is a new seeded episode.
"""

import os
import shutil
import tempfile

import numpy as np
import vizdoom

from env.actions import DOOM_LEFT, DOOM_NOOP, DOOM_RIGHT, doom_action
from env.config import EnvConfig
from env.frames import preprocess_doom

# take_cover.cfg's available_buttons are { MOVE_LEFT MOVE_RIGHT }.
DOOM_BUTTONS = {DOOM_NOOP: [0, 0], DOOM_LEFT: [1, 0], DOOM_RIGHT: [0, 1]}
TICS_PER_STEP = 1


class DoomTakeCoverEnv:
    """reset(seed) -> frame (64,64,3) uint8; step(a (1,)) -> (frame, reward, terminated, truncated)."""

    action_size = 1

    def __init__(self, env_config: EnvConfig):
        self.max_steps = env_config.max_steps
        try:
            resolution = getattr(vizdoom.ScreenResolution, env_config.doom_resolution)
        except AttributeError:
            raise ValueError(f"env.doom_resolution={env_config.doom_resolution!r} is not a vizdoom.ScreenResolution name (e.g. RES_160X120)") from None
        game = vizdoom.DoomGame()
        game.load_config(os.path.join(vizdoom.scenarios_path, "take_cover.cfg"))
        game.set_screen_resolution(resolution)
        game.set_screen_format(vizdoom.ScreenFormat.RGB24)
        game.set_window_visible(False)
        game.set_sound_enabled(False)
        game.set_render_hud(False)  # nothing to crop: the frame is all view
        game.set_doom_skill(env_config.doom_skill)
        game.set_episode_timeout(0)  # the step cap is ours
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
        return preprocess_doom(self.raw_frame)

    def step(self, action) -> tuple[np.ndarray, float, bool, bool]:
        reward = self.game.make_action(DOOM_BUTTONS[doom_action(action)], TICS_PER_STEP)
        self.steps += 1
        terminated = self.game.is_episode_finished()  # the player died
        if not terminated:
            self.raw_frame = self.game.get_state().screen_buffer
        # After death there is no new state: the last frame is repeated.
        truncated = not terminated and self.steps >= self.max_steps
        return preprocess_doom(self.raw_frame), float(reward), bool(terminated), truncated

    def close(self) -> None:
        self.game.close()
        shutil.rmtree(self._config_folder, ignore_errors=True)
