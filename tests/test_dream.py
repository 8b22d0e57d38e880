"""The dream: gymnasium compliance, batched == single-episode, per-row seeding, any actions,
and the controller's scoring loop over it."""

import dataclasses

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from controller.dream_scoring import DreamScorer
from controller.policy import ControllerShape, make_controller
from rnn.config import RnnConfig
from rnn.dream import BatchedDream, DreamEnv
from rnn.model import build_mdn_rnn

Z_SIZE, ACTION_SIZE, HIDDEN_SIZE, MAX_STEPS = 4, 1, 16, 40


@pytest.fixture(scope="module")
def dream_parts():
    """A small Doom-like M (restart input, done head) whose episodes end at varied times."""
    import keras

    keras.utils.set_random_seed(0)
    config = dataclasses.replace(RnnConfig(), hidden_size=HIDDEN_SIZE, num_mixtures=3, restart_input=True, predict_done=True)
    model = build_mdn_rnn(config, Z_SIZE, ACTION_SIZE)
    kernel, bias = model.head.get_weights()
    kernel[:, -1] = np.random.default_rng(5).normal(scale=4.0, size=HIDDEN_SIZE)  # the done logit follows h strongly ...
    bias[-1] = -2.5  # ... from a negative start: episodes of varied lengths
    model.head.set_weights([kernel, bias])
    rng = np.random.default_rng(0)
    initial_mu = rng.normal(size=(5, Z_SIZE)).astype(np.float32)
    initial_logvar = rng.normal(scale=0.3, size=(5, Z_SIZE)).astype(np.float32) - 1.0
    return model, initial_mu, initial_logvar


def _scorer(dream_parts, use_cell_state, use_bias=True, kind="linear", max_steps=MAX_STEPS):
    shape = ControllerShape("doom", Z_SIZE, HIDDEN_SIZE, ACTION_SIZE, use_cell_state, use_bias, kind, 5 if kind == "mlp" else 0)
    return DreamScorer(*dream_parts, 1.15, max_steps, make_controller(shape))


def _controllers(scorer, num_rows, seed=1):
    """Parameter rows (num_rows, N): a linear controller's W (F, A) drawn at scale 0.5, then its b (A,) at 0.1;
    another kind's parameters at scale 0.5."""
    rng = np.random.default_rng(seed)
    controller = scorer.controller
    if controller.kind != "linear":
        return rng.normal(scale=0.5, size=(num_rows, controller.num_params)).astype(np.float32)
    weights = rng.normal(scale=0.5, size=(num_rows, controller.feature_size * ACTION_SIZE)).astype(np.float32)
    biases = rng.normal(scale=0.1, size=(num_rows, ACTION_SIZE)).astype(np.float32)
    return np.concatenate([weights, biases], axis=1) if controller.shape.use_bias else weights


def test_dream_env_passes_check_env(dream_parts):
    model, initial_mu, initial_logvar = dream_parts
    env = DreamEnv(model, initial_mu, initial_logvar, 1.15, MAX_STEPS)
    check_env(env, skip_render_check=True)
    observation, _ = env.reset(seed=3)
    assert {key: value.shape for key, value in observation.items()} == {"z": (Z_SIZE,), "h": (HIDDEN_SIZE,), "c": (HIDDEN_SIZE,)}
    np.testing.assert_array_equal(np.concatenate([observation["c"], observation["h"]]), 0.0)  # zero LSTM state at the start


def test_batched_and_single_episode_dreams_agree(dream_parts):
    model, initial_mu, initial_logvar = dream_parts
    num_rows = 21
    seeds = np.arange(100, 100 + num_rows, dtype=np.int64)
    batched = _scorer(dream_parts, use_cell_state=True)
    params = _controllers(batched, num_rows)
    returns, lengths = batched.run(params, seeds, return_lengths=True)
    assert len(set(lengths.tolist())) > 3, f"episode lengths should vary: {lengths}"  # compaction is exercised
    np.testing.assert_array_equal(returns, lengths.astype(np.float32))  # +1 per step

    env = DreamEnv(model, initial_mu, initial_logvar, 1.15, MAX_STEPS)
    for row in range(num_rows):
        observation, _ = env.reset(seed=int(seeds[row]))
        total, finished = 0.0, False
        while not finished:
            action = batched.policy.episode_action(observation, params[row])
            observation, reward, terminated, truncated, _ = env.step(action)
            total += reward
            finished = terminated or truncated
        assert total == returns[row], f"row {row}: single {total} vs batched {returns[row]}"


def test_same_seeds_same_returns_and_split_batches_agree(dream_parts):
    model, initial_mu, initial_logvar = dream_parts
    num_rows = 37
    seeds = np.arange(7, 7 + num_rows, dtype=np.int64) * 1_000_003
    batched = _scorer(dream_parts, use_cell_state=False)
    params = _controllers(batched, num_rows, seed=2)
    whole = batched.run(params, seeds)
    np.testing.assert_array_equal(batched.run(params, seeds), whole)
    # as two MPI ranks would: each runs a part of the rows
    for parts in ([0, 5, 37], [0, 1, 20, 37], [0, 36, 37]):
        split = np.concatenate([batched.run(params[a:b], seeds[a:b]) for a, b in zip(parts[:-1], parts[1:], strict=True)])
        np.testing.assert_array_equal(split, whole)
    # a permuted batch gives each row the same return
    order = np.random.default_rng(0).permutation(num_rows)
    np.testing.assert_array_equal(batched.run(params[order], seeds[order]), whole[order])
    other = batched.run(params, seeds + 1)
    assert not np.array_equal(other, whole)


def test_no_bias_and_hook(dream_parts):
    model, initial_mu, initial_logvar = dream_parts
    batched = _scorer(dream_parts, use_cell_state=True, use_bias=False)
    params = _controllers(batched, 3)
    steps = []
    returns, lengths = batched.run(params, np.array([1, 2, 3]), return_lengths=True, on_step=lambda step, rows, z, action, done: steps.append(len(rows)))
    assert len(steps) == lengths.max() and steps[0] == 3
    assert sum(steps) == lengths.sum()
    with pytest.raises(ValueError, match=r"controller parameters have shape \(3, 5\), expected \(3, 36\)"):
        batched.run(params[:, :5], np.array([1, 2, 3]))


def test_render_decodes_z_with_the_decoder(dream_parts):
    from vae.encode import decode_z, to_uint8
    from vae.model import build_decoder

    model, initial_mu, initial_logvar = dream_parts
    decoder = build_decoder(Z_SIZE)
    env = DreamEnv(model, initial_mu, initial_logvar, 1.15, MAX_STEPS, decoder=decoder, render_mode="rgb_array")
    env.reset(seed=5)
    env.step(np.zeros(ACTION_SIZE, np.float32))
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (64, 64, 3)
    np.testing.assert_array_equal(frame, to_uint8(decode_z(decoder, env.z[None]))[0])


def test_reward_head_gives_the_reward_and_tau_must_be_positive(dream_parts):
    """With predict_reward, each step's reward is M's reward head (here a constant 0.25)."""
    _, initial_mu, initial_logvar = dream_parts
    config = dataclasses.replace(RnnConfig(), hidden_size=HIDDEN_SIZE, num_mixtures=3, predict_done=True, predict_reward=True)
    model = build_mdn_rnn(config, Z_SIZE, ACTION_SIZE)
    kernel, bias = model.head.get_weights()
    kernel[:, -1], bias[-1] = 0.0, 0.25  # the reward head: a constant 0.25
    kernel[:, -2] = np.random.default_rng(5).normal(scale=4.0, size=HIDDEN_SIZE)  # done logit (before the reward)
    bias[-2] = -2.5
    model.head.set_weights([kernel, bias])
    batched = _scorer((model, initial_mu, initial_logvar), use_cell_state=False)
    returns, lengths = batched.run(_controllers(batched, 9), np.arange(9), return_lengths=True)
    assert len(set(lengths.tolist())) > 1
    np.testing.assert_allclose(returns, 0.25 * lengths)
    for tau in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="expected tau > 0"):
            BatchedDream(model, initial_mu, initial_logvar, tau, MAX_STEPS)


def _held_actions(seed, num_steps):
    """A data-collection-like policy: random actions in [-1, 1], each held for 1-10 steps."""
    rng = np.random.default_rng(seed)
    actions = []
    while len(actions) < num_steps:
        actions += [rng.uniform(-1, 1, ACTION_SIZE).astype(np.float32)] * int(rng.integers(1, 11))
    return np.array(actions[:num_steps])


def test_any_actions_drive_the_batched_dream_as_they_drive_dream_env(dream_parts):
    """The fidelity report's use: M stepped by per-row action sequences (not a controller),
    finished rows dropped, each row's trajectory that of a single-episode DreamEnv."""
    model, initial_mu, initial_logvar = dream_parts
    seeds = np.arange(50, 69, dtype=np.int64)
    plans = {row: _held_actions(row, MAX_STEPS) for row in range(len(seeds))}
    dream = BatchedDream(model, initial_mu, initial_logvar, 1.15, MAX_STEPS)
    observation = dream.reset(seeds)
    assert observation.z.shape == (len(seeds), Z_SIZE) and observation.h.shape == observation.c.shape == (len(seeds), HIDDEN_SIZE)
    batched = {row: [] for row in range(len(seeds))}  # row -> [(z_{t+1}, reward)]
    ends = {}
    while not dream.finished:
        step = dream.step_count
        transition = dream.step(np.stack([plans[row][step] for row in dream.rows]))
        assert transition.step == step
        np.testing.assert_array_equal(transition.actions, np.stack([plans[row][step] for row in transition.rows]))
        for index, row in enumerate(transition.rows):
            batched[row].append((transition.observation.z[index], transition.reward[index]))
            if transition.terminated[index] or transition.truncated[index]:
                ends[row] = (bool(transition.terminated[index]), bool(transition.truncated[index]))
        assert not np.isin(dream.rows, [row for row in transition.rows[transition.terminated | transition.truncated]]).any()
    assert len({len(steps) for steps in batched.values()}) > 3  # rows were dropped at different steps
    with pytest.raises(RuntimeError, match="call reset"):
        dream.step(np.zeros((0, ACTION_SIZE), np.float32))

    env = DreamEnv(model, initial_mu, initial_logvar, 1.15, MAX_STEPS)
    for row, seed in enumerate(seeds):
        first, _ = env.reset(seed=int(seed))
        np.testing.assert_array_equal(first["z"], observation.z[row])
        for step, (z_next, reward) in enumerate(batched[row]):
            single, single_reward, terminated, truncated, _ = env.step(plans[row][step])
            np.testing.assert_array_equal(single["z"], z_next)
            assert single_reward == reward
        assert (terminated, truncated) == ends[row]


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_the_controller_traced_into_the_step_acts_as_the_controller_outside_it(dream_parts, kind):
    """DreamScorer's one compiled call per step (C traced into the dream's step) gives the
    actions and returns of C computed separately on each observation and passed as actions."""
    model, initial_mu, initial_logvar = dream_parts
    scorer = _scorer(dream_parts, use_cell_state=True, kind=kind)
    seeds = np.arange(300, 317, dtype=np.int64)
    params = _controllers(scorer, len(seeds), seed=4)
    fused_actions = {}
    returns = scorer.run(
        params,
        seeds,
        on_step=lambda step, rows, z, action, done: fused_actions.update({(step, int(row)): a for row, a in zip(rows, action, strict=True)}),
    )

    dream = BatchedDream(model, initial_mu, initial_logvar, 1.15, MAX_STEPS)
    observation = dream.reset(seeds)
    separate = np.zeros(len(seeds), np.float64)
    while not dream.finished:
        rows, step = dream.rows, dream.step_count
        actions = scorer.policy.actions(observation, params[rows])
        np.testing.assert_array_equal(actions, np.stack([fused_actions[(step, int(row))] for row in rows]))
        transition = dream.step(actions)
        separate[transition.rows] += transition.reward
        observation = dream.observation() if not dream.finished else None
    np.testing.assert_array_equal(separate.astype(np.float32), returns)
    with pytest.raises(ValueError, match="needs a policy"):
        dream.reset(seeds)
        dream.step()
    with pytest.raises(ValueError, match="actions have shape"):
        dream.step(np.zeros((3, ACTION_SIZE), np.float32))


def test_the_scorer_from_the_config_uses_its_tau_cap_and_controller(dream_parts):
    """DreamScorer.from_config: tau controller.temperature, cap controller.max_dream_steps, and the
    controller of controller.kind, as training, iterative training and the fidelity report build it."""
    from scripts import config as config_module

    overrides = {"vae.z_size": Z_SIZE, "rnn.hidden_size": HIDDEN_SIZE, "controller.temperature": 1.3, "controller.max_dream_steps": 6}
    config = config_module.build("doom", overrides={**overrides, "controller.kind": "mlp", "controller.hidden_size": 5})
    scorer = DreamScorer.from_config(config, *dream_parts)
    assert (scorer.dream.core.temperature, scorer.dream.max_steps) == (1.3, 6)
    assert scorer.controller.shape == ControllerShape("doom", Z_SIZE, HIDDEN_SIZE, ACTION_SIZE, True, False, "mlp", 5)
    seeds = np.arange(20, 40, dtype=np.int64)
    params = _controllers(scorer, len(seeds))
    returns, lengths = scorer.run(params, seeds, return_lengths=True)
    assert lengths.max() == 6 and lengths.min() >= 1
    by_hand = DreamScorer(*dream_parts, 1.3, 6, make_controller(scorer.controller.shape))
    np.testing.assert_array_equal(by_hand.run(params, seeds), returns)


# --- the done rules ---------------------------------------------------------------------------------


def _recounted_dones(model, dream, seeds, actions_of, rule) -> int:
    """Step `dream` (reset with `seeds`) to the end, row r taking actions_of(r, step); at each step recompute
    M's done logit from the observation before it (eager, padded like the dream) and check that the rule
    made of it what its definition says. Returns the number of (row, step) checked."""
    import tensorflow as tf

    from rnn import counter_random
    from rnn.dream import pad_rows

    checked = 0
    while not dream.finished:
        rows, step = dream.rows, dream.step_count
        observation = dream.observation()
        actions = np.stack([actions_of(row, step) for row in rows])
        restart = np.full(len(pad_rows(rows)), float(step == 0), np.float32)
        inputs = model.make_input(pad_rows(observation.z), pad_rows(actions), restart)
        output, _, _ = model.step(inputs, tf.constant(pad_rows(observation.h)), tf.constant(pad_rows(observation.c)))
        logit = model.split(output)["done_logit"].numpy()[: len(rows)].astype(np.float64)
        if rule is None:
            expected, margin = logit > 0, np.abs(logit)
        else:
            keys = counter_random.row_keys(tf.constant(seeds[rows]), step, counter_random.STREAM_DONE)
            draw = counter_random.uniform(keys, 1).numpy()[:, 0]
            probability = 1.0 / (1.0 + np.exp(-(rule.scale * (logit - rule.log_weight) + rule.offset)))
            expected, margin = draw < probability, np.abs(draw - probability)
        transition = dream.step(actions)
        clear = margin > 1e-5  # float32 rounding decides nothing further away
        np.testing.assert_array_equal(transition.terminated[clear], expected[clear], err_msg=f"step {step}")
        checked += int(clear.sum())
    return checked


@pytest.mark.parametrize("sampled", [False, True])
def test_the_done_rule_ends_episodes_where_its_definition_says(dream_parts, sampled):
    """Threshold: terminated exactly where M's done logit > 0. Sampled: exactly where the row's own
    draw u (stream STREAM_DONE of its seed and step) < sigmoid(scale (logit - log w) + offset)."""
    from rnn.dream import DoneRule

    model, initial_mu, initial_logvar = dream_parts
    rule = DoneRule("sampled", np.log(10.0), 1.5, 0.7) if sampled else None
    seeds = np.arange(900, 921, dtype=np.int64)
    plans = {row: _held_actions(row + 7, MAX_STEPS) for row in range(len(seeds))}
    dream = BatchedDream(model, initial_mu, initial_logvar, 1.15, MAX_STEPS, done_rule=rule)
    dream.reset(seeds)
    assert _recounted_dones(model, dream, seeds, lambda row, step: plans[row][step], rule) > 100


def test_an_explicit_threshold_rule_is_the_default_rule(dream_parts):
    from rnn.dream import DoneRule

    model, initial_mu, initial_logvar = dream_parts
    seeds = np.arange(40, 61, dtype=np.int64)
    default = _scorer(dream_parts, use_cell_state=True)
    explicit = DreamScorer(model, initial_mu, initial_logvar, 1.15, MAX_STEPS, default.controller, done_rule=DoneRule())
    params = _controllers(default, len(seeds), seed=3)
    np.testing.assert_array_equal(default.run(params, seeds), explicit.run(params, seeds))
    with pytest.raises(ValueError, match="expected 'threshold' or 'sampled'"):
        DoneRule("sometimes")
    with pytest.raises(ValueError, match="must be finite"):
        DoneRule("sampled", float("nan"), 0.0, 1.0)


def test_sampled_deaths_are_reproducible_and_split_invariant(dream_parts):
    """The sampled rule's draws are the row's own (seed, step): the same seeds give the same lengths,
    in one batch, split in two (as two MPI ranks), permuted, or one episode at a time in DreamEnv."""
    from rnn.dream import DoneRule

    model, initial_mu, initial_logvar = dream_parts
    rule = DoneRule("sampled", np.log(10.0), 2.0, 1.0)
    threshold_scorer = _scorer(dream_parts, use_cell_state=True)
    scorer = DreamScorer(model, initial_mu, initial_logvar, 1.15, MAX_STEPS, threshold_scorer.controller, done_rule=rule)
    seeds = np.arange(11, 11 + 33, dtype=np.int64) * 7_919
    params = _controllers(scorer, len(seeds), seed=6)
    whole, lengths = scorer.run(params, seeds, return_lengths=True)
    assert len(set(lengths.tolist())) > 3
    np.testing.assert_array_equal(scorer.run(params, seeds), whole)
    split = np.concatenate([scorer.run(params[a:b], seeds[a:b]) for a, b in ((0, 17), (17, 33))])
    np.testing.assert_array_equal(split, whole)
    order = np.random.default_rng(1).permutation(len(seeds))
    np.testing.assert_array_equal(scorer.run(params[order], seeds[order]), whole[order])
    threshold = threshold_scorer.run(params, seeds)
    assert not np.array_equal(threshold, whole)  # the rule matters

    env = DreamEnv(model, initial_mu, initial_logvar, 1.15, MAX_STEPS, done_rule=rule)
    for row in (0, 5, 32):
        observation, _ = env.reset(seed=int(seeds[row]))
        total, finished = 0.0, False
        while not finished:
            observation, reward, terminated, truncated, _ = env.step(scorer.policy.episode_action(observation, params[row]))
            total += reward
            finished = terminated or truncated
        assert total == whole[row]


def test_sampled_death_rate_matches_the_calibrated_probability():
    """An M whose done logit is a constant x: the sampled rule dies each step with p = sigmoid(scale (x -
    log w) + offset), so deaths / steps over many rows estimates p, and lengths are geometric (mean 1/p)."""
    import dataclasses

    import keras

    from rnn.dream import DoneRule

    keras.utils.set_random_seed(0)
    config = dataclasses.replace(RnnConfig(), hidden_size=HIDDEN_SIZE, num_mixtures=3, restart_input=True, predict_done=True)
    model = build_mdn_rnn(config, Z_SIZE, ACTION_SIZE)
    kernel, bias = model.head.get_weights()
    kernel[:, -1], bias[-1] = 0.0, 1.0  # x = 1 at every step: the threshold rule would end every episode at once
    model.head.set_weights([kernel, bias])
    rule = DoneRule("sampled", np.log(10.0), -1.5, 0.8)
    probability = 1.0 / (1.0 + np.exp(-(0.8 * (1.0 - np.log(10.0)) - 1.5)))  # ~0.06
    initial = np.zeros((1, Z_SIZE), np.float32)
    max_steps = 400
    dream = BatchedDream(model, initial, initial - 2.0, 1.0, max_steps, done_rule=rule)
    rows = 2000
    lengths = np.zeros(rows, np.int64)
    deaths = 0
    dream.reset(np.arange(rows, dtype=np.int64))
    while not dream.finished:
        transition = dream.step(np.zeros((len(dream.rows), ACTION_SIZE), np.float32))
        lengths[transition.rows] += 1
        deaths += int(transition.terminated.sum())
    steps = lengths.sum()
    standard_error = np.sqrt(probability * (1 - probability) / steps)
    assert abs(deaths / steps - probability) < 4 * standard_error, (deaths / steps, probability)
    assert deaths == rows  # no episode lasts 400 steps at p ~ 0.06
    assert abs(lengths.mean() - 1 / probability) < 4 * np.sqrt(1 - probability) / probability / np.sqrt(rows)
    threshold = BatchedDream(model, initial, initial - 2.0, 1.0, max_steps)
    threshold.reset(np.arange(3, dtype=np.int64))
    assert threshold.step(np.zeros((3, ACTION_SIZE), np.float32)).terminated.all()
