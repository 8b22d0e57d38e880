"""BatchEnv: N real environments stepped in lockstep inside one process.

docs/design.md section 6: evaluation runs V, M and C on a whole batch at once, so
the environments are stepped together and their frames stacked. A row whose
episode has ended is frozen (not stepped, reward 0, its last frame repeated,
its terminated/truncated flags kept) until reset_one starts a new episode in it.
A row that was never reset is idle in the same way (counted as finished), so a
batch can hold more environments than there are episodes left to play.
"""

import numpy as np

from env.config import EnvConfig
from env.frames import FRAME_SHAPE
from env.make import make_env


class BatchEnv:
    """Lockstep batch of `num_envs` environments of env_config.name.

    reset(seeds) -> frames (N, 64, 64, 3) uint8
    reset_one(row, seed) -> frame (64, 64, 3) uint8
    step(actions (N, A)) -> frames (N, 64, 64, 3) uint8, rewards (N,) float32,
                            terminated (N,) bool, truncated (N,) bool
    finished (N,) bool: rows whose episode has ended (terminated | truncated).
    """

    def __init__(self, env_config: EnvConfig, num_envs: int):
        if num_envs < 1:
            raise ValueError(f"BatchEnv needs at least one environment, got num_envs={num_envs}")
        self.num_envs = num_envs
        self.envs = [make_env(env_config) for _ in range(num_envs)]
        self.action_size = self.envs[0].action_size
        self.frames = np.zeros((num_envs, *FRAME_SHAPE), dtype=np.uint8)
        self.terminated = np.zeros(num_envs, dtype=bool)
        self.truncated = np.ones(num_envs, dtype=bool)  # idle until the row's first reset_one

    @property
    def finished(self) -> np.ndarray:
        return self.terminated | self.truncated

    def raw_frame(self, row: int) -> np.ndarray:
        """The last full-resolution RGB frame of one row (for videos)."""
        return self.envs[row].raw_frame

    def reset(self, seeds) -> np.ndarray:
        seeds = list(seeds)
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset needs one seed per environment: got {len(seeds)} seeds for {self.num_envs} environments")
        for row, seed in enumerate(seeds):
            self.reset_one(row, seed)
        return self.frames.copy()

    def reset_one(self, row: int, seed: int) -> np.ndarray:
        self.frames[row] = self.envs[row].reset(seed)
        self.terminated[row] = False
        self.truncated[row] = False
        return self.frames[row].copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        actions = np.asarray(actions, dtype=np.float32)
        if actions.shape != (self.num_envs, self.action_size):
            raise ValueError(f"step needs actions of shape ({self.num_envs}, {self.action_size}), got {actions.shape}")
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        for row in np.flatnonzero(~self.finished):
            frame, reward, terminated, truncated = self.envs[row].step(actions[row])
            self.frames[row] = frame
            rewards[row] = reward
            self.terminated[row] = terminated
            self.truncated[row] = truncated
        return self.frames.copy(), rewards, self.terminated.copy(), self.truncated.copy()

    def close(self) -> None:
        for env in self.envs:
            env.close()
