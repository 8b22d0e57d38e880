"""env/carracing_fast.py against gymnasium's CarRacing-v3: whole episodes played side by side with the
same seeds and actions give the same 96x96 frames, rewards, terminated and truncated, bit for bit."""

import math

import numpy as np
import pytest

import env.carracing_fast as carracing_fast
from env.carracing import CarRacingEnv, make_gym_carracing
from env.config import EnvConfig
from scripts import config as config_module


def pursuit_action(car_racing, lookahead: int = 6, top_speed: float = 60.0) -> np.ndarray:
    """A driver that steers at the track point `lookahead` tiles past the nearest one (reads the env's state)."""
    hull = car_racing.car.hull
    x, y = hull.position
    track = np.array([(point[2], point[3]) for point in car_racing.track])
    nearest = int(np.argmin(((track - (x, y)) ** 2).sum(axis=1)))
    target_x, target_y = track[(nearest + lookahead) % len(track)]
    heading = hull.angle + math.pi / 2  # the hull's forward axis is its local +y
    error = (math.atan2(target_y - y, target_x - x) - heading + math.pi) % (2 * math.pi) - math.pi
    speed = hull.linearVelocity.length
    return np.array([np.clip(-2.0 * error, -1, 1), 0.4 if speed < top_speed else 0.0, 0.3 if speed > top_speed + 15 else 0.0], np.float32)


class SideBySide:
    """The stock env and the fast one, stepped with the same actions; every output compared."""

    def __init__(self, **kwargs):
        self.stock = make_gym_carracing("stock", **kwargs)
        self.fast = make_gym_carracing("fast", **kwargs)
        self.frames = []

    def reset(self, seed: int) -> None:
        stock_frame, _ = self.stock.reset(seed=seed)
        fast_frame, _ = self.fast.reset(seed=seed)
        np.testing.assert_array_equal(fast_frame, stock_frame, err_msg=f"seed {seed}: first frame")
        self.seed, self.steps, self.frames = seed, 0, [stock_frame]

    def step(self, action) -> tuple[float, bool, bool, dict]:
        stock_frame, stock_reward, stock_terminated, stock_truncated, info = self.stock.step(action)
        fast_frame, fast_reward, fast_terminated, fast_truncated, fast_info = self.fast.step(action)
        self.steps += 1
        where = f"seed {self.seed}, step {self.steps}"
        assert fast_frame.shape == (96, 96, 3) and fast_frame.dtype == np.uint8
        np.testing.assert_array_equal(fast_frame, stock_frame, err_msg=where)
        assert (fast_reward, fast_terminated, fast_truncated, fast_info) == (stock_reward, stock_terminated, stock_truncated, info), where
        self.frames.append(stock_frame)
        return stock_reward, stock_terminated, stock_truncated, info

    def play(self, seed: int, policy, max_steps: int = 1000) -> tuple[float, bool, bool, dict]:
        """policy(step, stock CarRacing) -> action. Returns the last (reward, terminated, truncated, info)."""
        self.reset(seed)
        for step in range(max_steps):
            reward, terminated, truncated, info = self.step(policy(step, self.stock.unwrapped))
            if terminated or truncated:
                break
        return reward, terminated, truncated, info

    def close(self) -> None:
        self.stock.close()
        self.fast.close()


@pytest.fixture(scope="module")
def pair():
    side_by_side = SideBySide()
    yield side_by_side
    side_by_side.close()


def test_random_actions_and_resets_with_new_seeds(pair):
    rng = np.random.default_rng(0)
    for seed, steps in ((0, 110), (7, 60), (0, 30)):
        pair.play(seed, lambda step, car_racing: rng.uniform((-1, 0, 0), (1, 1, 0.3)).astype(np.float32), steps)
        frames = np.stack(pair.frames)
        # The first second zooms in, and the frames move: the comparison above was not of constant images.
        assert pair.steps == steps and len({frame.tobytes() for frame in frames}) > steps // 2
    assert not np.array_equal(frames[-1], pair.frames[0])


def test_driving_off_the_playfield_ends_the_episode_with_minus_100(pair, monkeypatch):
    filled = []
    inside = carracing_fast.screen_inside_field
    monkeypatch.setattr(carracing_fast, "screen_inside_field", lambda *args: filled.append(inside(*args)) or filled[-1])

    def steer_out(step, car_racing):  # a right turn off the track, then straight on to the edge of the map
        return np.array([0.6 if step < 35 else 0.0, 0.4, 0.0], np.float32)

    reward, terminated, truncated, info = pair.play(0, steer_out, 300)
    assert (reward, terminated, truncated, info) == (-100, True, False, {"lap_finished": False})
    assert pair.steps < 300
    # Both ways of drawing the background were compared: the fill mid-map, the stock polygon near the edge.
    assert True in filled and False in filled


def test_completing_the_lap_ends_the_episode(pair):
    """A short lap: all tiles from the 12th on are marked visited (alike in both envs), then the driver visits
    the ones before (the car starts on the first)."""
    pair.reset(3)
    for env in (pair.stock.unwrapped, pair.fast.unwrapped):
        for tile in env.road[12:]:
            tile.road_visited = True
        env.tile_visited_count = sum(tile.road_visited for tile in env.road)
        assert env.tile_visited_count < len(env.road)
    for _ in range(300):
        _, terminated, truncated, info = pair.step(pursuit_action(pair.stock.unwrapped))
        if terminated or truncated:
            break
    assert (terminated, truncated, info) == (True, False, {"lap_finished": True})
    assert pair.stock.unwrapped.tile_visited_count == len(pair.stock.unwrapped.road)


def test_dashboard_bars_taller_than_the_panel(pair):
    """A spinning wheel's bar rises above the dashboard panel into the road view (the rarely drawn part)."""
    pair.reset(5)
    for step in range(40):
        if step == 20:
            for env in (pair.stock.unwrapped, pair.fast.unwrapped):
                env.car.wheels[2].omega = 1500.0
        pair.step(np.array([0.0, 1.0, 0.0], np.float32))
        if step == 20:
            assert pair.fast.unwrapped.dashboard_top_row() < 600


def test_video_frames_and_random_colours_match():
    """render() (rgb_array, 600x400) and domain_randomize's colours go through the same drawing code."""
    side_by_side = SideBySide(render_mode="rgb_array", domain_randomize=True)
    try:
        side_by_side.reset(11)
        for _ in range(60):
            side_by_side.step(np.array([0.2, 0.5, 0.0], np.float32))
        video_frame = side_by_side.fast.render()
        assert video_frame.shape == (400, 600, 3)
        np.testing.assert_array_equal(video_frame, side_by_side.stock.render())
    finally:
        side_by_side.close()


def test_the_fast_renderer_is_the_default_and_keeps_gymnasiums_wrappers():
    assert EnvConfig().carracing_renderer == "fast"
    fast, stock = make_gym_carracing("fast"), make_gym_carracing("stock")
    try:
        assert isinstance(fast.unwrapped, carracing_fast.FastCarRacing) and type(stock.unwrapped).__name__ == "CarRacing"
        assert fast.spec.max_episode_steps == stock.spec.max_episode_steps == 1000
        assert type(fast).__name__ == type(stock).__name__ == "TimeLimit"
    finally:
        fast.close()
        stock.close()
    env = CarRacingEnv(EnvConfig(carracing_renderer="stock"))
    assert type(env.gym_env.unwrapped).__name__ == "CarRacing"
    env.close()
    with pytest.raises(ValueError, match="env.carracing_renderer='gpu': expected one of fast, stock"):
        config_module.build("carracing", overrides={"env.carracing_renderer": "gpu"})
    with pytest.raises(ValueError, match="env.carracing_renderer='gpu': expected one of fast, stock"):
        make_gym_carracing("gpu")


@pytest.mark.slow
@pytest.mark.parametrize("seed, ending", [(1, (True, False, {"lap_finished": True})), (0, (False, True, {}))])
def test_whole_episodes_of_a_driver_lap_complete_or_time_limit(pair, seed, ending):
    """The driver completes seed 1's lap in ~800 steps; on seed 0's track it is still driving at the 1000-step limit."""
    _, terminated, truncated, info = pair.play(seed, lambda step, car_racing: pursuit_action(car_racing))
    assert (terminated, truncated, info) == ending
