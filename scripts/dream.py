"""Videos of M's dream (paper, section 5): DIR/dream/dream.mp4 and DIR/dream/real.mp4.

dream.mp4: one dream episode (a real first frame, then M sampling z at
temperature tau, fed the controller's actions, ended by controller.done_rule),
each z decoded by V.
real.mp4: a real episode, each frame beside V's reconstruction of it.
The controller is DIR/controller/mean.npz when training has saved one;
otherwise a random controller (small parameters) acts (dream) and the random
data-collection policy drives the real episode. --params best|selected plays
best.npz or selected.npz instead (which must exist).
"""

from pathlib import Path

import numpy as np

from common.layout import DREAM_VIDEO_NAME, REAL_VIDEO_NAME
from scripts import stage


def _add_arguments(parser):
    parser.add_argument("--tau", type=float, default=None, help="dream temperature (default: controller.temperature)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dream episode and of the real episode")
    parser.add_argument("--max-steps", type=int, default=None, help="dream episode cap (default: controller.max_dream_steps)")
    parser.add_argument("--format", choices=("mp4", "gif"), default="mp4", help="video container")
    parser.add_argument(
        "--params",
        choices=("best", "mean", "selected"),
        default=None,
        help="which saved controller acts (default: mean.npz if training has saved one, else a random controller)",
    )


def load_controller(run_dir: Path, config, which: str | None = None):
    """C's parameters (N,) from DIR/controller/<which>.npz; which None: mean.npz, or None when
    there is none yet (a file asked for by name must exist)."""
    from controller import store

    if which is None:
        if not store.params_path(run_dir, "mean").exists():
            return None
        which = "mean"
    params, _, _ = store.load_controller(config, run_dir, which)
    return params


def dream_episode(model, decoder, initial_mu, initial_logvar, config, controller, tau: float, max_steps: int, seed: int, done_rule=None):
    """Frames (each z decoded by V, in one batch at the end) and the return of one dream episode
    (done_rule: rnn/dream.py's DoneRule, None for the threshold)."""
    from controller.dream_scoring import ControllerDreamPolicy
    from controller.policy import controller_from_config
    from rnn.dream import DreamEnv
    from vae.encode import decode_z, to_uint8

    env = DreamEnv(model, initial_mu, initial_logvar, tau, max_steps, done_rule=done_rule)
    policy = ControllerDreamPolicy(controller_from_config(config))
    if controller is None:
        controller = np.random.default_rng(seed).normal(scale=0.1, size=policy.controller.num_params).astype(np.float32)
    observation, _ = env.reset(seed=seed)
    latents, total, finished = [env.z], 0.0, False
    while not finished:
        action = policy.episode_action(observation, controller)
        observation, reward, terminated, truncated, _ = env.step(action)
        latents.append(env.z)
        total += reward
        finished = terminated or truncated
    return to_uint8(decode_z(decoder, np.stack(latents))), total


def real_episode(encoder, model, config, controller, seed: int):
    """Real frames (64x64 and full resolution) seen before each action of one episode, and its return.

    With a controller (its parameters (N,)), the episode is played by the agent evaluation uses (controller/agent.py:
    V, M and C in one compiled call per step); without one, by the random data-collection policy.
    """
    if controller is not None:
        from controller.agent import Agent
        from controller.policy import controller_from_config
        from env.batch import BatchEnv

        agent = Agent(encoder, model, controller_from_config(config), sample_z=config.controller.sample_z)
        batch_env = BatchEnv(config.env, 1)
        try:
            result = agent.run_episodes(batch_env, controller[None], np.array([seed]), record=0)
        finally:
            batch_env.close()
        return result["frames"], result["raw_frames"], float(result["returns"][0])

    from env.make import make_env
    from env.policies import episode_actions

    env = make_env(config.env)
    frames, raw_frames, total = [], [], 0.0
    try:
        frame = env.reset(seed)
        for action in episode_actions(config.generate, config.env.name, config.env.action_size, config.env.max_steps, seed):
            frames.append(frame)
            raw_frames.append(env.raw_frame)
            frame, reward, terminated, truncated = env.step(np.asarray(action, np.float32))
            total += reward
            if terminated or truncated:
                break
    finally:
        env.close()
    return np.stack(frames), raw_frames, total


def validate(invocation):
    """Before --force removes the videos: the arguments, V, M, the first-frame table and the
    controller (if saved) all load for this config, and M's calibration with controller.done_rule=sampled;
    returns them with tau, the step cap and the done rule."""
    from rnn.calibration import done_rule
    from rnn.store import load_mdn_rnn
    from vae.series import read_initial_z
    from vae.store import load_encoder_decoder

    config, run_dir, arguments = invocation.config, invocation.run_dir, invocation.arguments
    run = invocation.layout
    tau = config.controller.temperature if arguments.tau is None else arguments.tau
    max_steps = config.controller.max_dream_steps if arguments.max_steps is None else arguments.max_steps
    if not tau > 0:  # also refuses NaN
        raise stage.StageError(f"temperature tau={tau} (--tau or controller.temperature): expected a number > 0, e.g. --tau 1.15 (the paper's)")
    if max_steps < 1:
        raise stage.StageError(f"dream episode cap {max_steps} (--max-steps or controller.max_dream_steps): expected at least 1 step, e.g. --max-steps 2100")
    encoder, decoder = load_encoder_decoder(run.vae, config.vae)
    model = load_mdn_rnn(run.rnn, config)
    initial_mu, initial_logvar = read_initial_z(run.series, config.vae.z_size)
    controller = load_controller(run_dir, config, arguments.params)
    return tau, max_steps, encoder, decoder, model, initial_mu, initial_logvar, controller, done_rule(config, run.rnn)


def main(argv=None):
    invocation = stage.parse("dream", __doc__, argv, add_arguments=_add_arguments)
    config, run, arguments = invocation.config, invocation.layout, invocation.arguments
    tau, max_steps, encoder, decoder, model, initial_mu, initial_logvar, controller, done_rule = stage.begin(invocation, validate=validate)

    from common.video import side_by_side, to_height, write_video
    from controller.store import params_path
    from vae.encode import reconstruct, to_uint8

    relative = Path()  # the controller files as named relative to the run directory
    saved = f"the saved controller {params_path(relative, arguments.params or 'mean')}"
    who = saved if controller is not None else f"a random controller (no {params_path(relative, 'mean')} yet)"

    frames, dream_return = dream_episode(model, decoder, initial_mu, initial_logvar, config, controller, tau, max_steps, arguments.seed, done_rule)
    dream_path = run.dream / Path(DREAM_VIDEO_NAME).with_suffix(f".{arguments.format}")
    write_video(dream_path, [to_height(frame) for frame in frames])
    print(f"{dream_path}: dream at tau {tau}, {len(frames) - 1} steps, return {dream_return:.1f}, acted by {who}, done rule {done_rule.describe()}")

    frames, raw_frames, real_return = real_episode(encoder, model, config, controller, arguments.seed)
    reconstructions = to_uint8(reconstruct(encoder, decoder, frames))
    pictures = side_by_side([frame if raw is None else raw for frame, raw in zip(frames, raw_frames, strict=True)], reconstructions)
    real_path = run.dream / Path(REAL_VIDEO_NAME).with_suffix(f".{arguments.format}")
    write_video(real_path, pictures)
    print(f"{real_path}: real episode ({len(frames)} frames, return {real_return:.1f}) beside V's reconstruction")


if __name__ == "__main__":
    stage.run_main(main)
