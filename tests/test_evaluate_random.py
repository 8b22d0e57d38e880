"""evaluate --params random: the data-collection policy on the controller evaluation's seeds, in DIR/eval_random."""

import json

import numpy as np
import pytest

from controller import evaluate as evaluation
from controller import store
from controller.policy import controller_from_config
from env.collect import collect_episode
from env.make import make_env
from env.policies import episode_actions
from scripts import evaluate, stage
from tests.controller_fixtures import make_run


def files_of(folder):
    """Every file under folder -> its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def config_only_run(run_dir, preset, assignments):
    """A run directory holding only config.json (as right after it is started)."""
    run_dir.mkdir(parents=True)
    return stage.resolve_config(run_dir, preset, assignments)


@pytest.mark.parametrize(
    "preset, assignments",
    [("doom-smoke", ["env.max_steps=200", "controller.envs_per_worker=2"]), ("carracing-smoke", ["env.max_steps=40", "controller.envs_per_worker=2"])],
)
def test_returns_equal_episodes_played_one_at_a_time_and_the_summary_is_numpys(tmp_path, preset, assignments):
    run_dir = tmp_path / "run"
    config = config_only_run(run_dir, preset, assignments)
    evaluate.main(["--run-dir", str(run_dir), "--params", "random", "--episodes", "4"])
    assert sorted(path.name for path in run_dir.iterdir()) == [".locks", "config.json", "eval_random"]  # no V, M, C, no eval/
    saved = json.loads((run_dir / "eval_random" / "returns.json").read_text())
    policy = {"doom-smoke": "hold", "carracing-smoke": "brownian"}[preset]
    assert saved["policy"] == f"random ({policy})"

    expected = []
    env = make_env(config.env)
    try:
        for index in range(4):
            seed = 1_000_000 + index
            actions = episode_actions(config.generate, config.env.name, config.env.action_size, config.env.max_steps, seed)
            episode = collect_episode(env, actions, seed)
            total = float(np.cumsum(episode["reward"].astype(np.float64))[-1])  # summed step by step, like the batch
            expected.append({"episode": index, "seed": seed, "return": total, "length": len(episode["done"])})
    finally:
        env.close()
    assert saved["episodes"] == expected

    values = np.array([episode["return"] for episode in expected])
    summary = json.loads((run_dir / "eval_random" / "summary.json").read_text())
    assert summary["policy"] == f"random ({policy})" and summary["episodes"] == 4 and summary["first_seed"] == 1_000_000
    assert summary["mean"] == values.mean() and summary["std"] == values.std(ddof=0)
    assert summary["min"] == values.min() and summary["max"] == values.max()
    assert summary["mean_length"] == np.mean([episode["length"] for episode in expected])
    assert summary["env_renderer"] == ("fast" if preset == "carracing-smoke" else None)
    assert (run_dir / "eval_random" / "histogram.png").stat().st_size > 0
    assert not (run_dir / "eval_random" / evaluation.PARTIAL_NAME).exists()
    assert json.loads((run_dir / "eval_random" / "done.json").read_text())["summary"] == summary

    before = files_of(run_dir)
    evaluate.main(["--run-dir", str(run_dir), "--params", "random", "--episodes", "4"])
    assert files_of(run_dir) == before  # a finished evaluation is not redone: no file changes


def test_a_killed_random_evaluation_resumes_to_the_same_returns(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    config_only_run(run_dir, "doom-smoke", ["env.max_steps=30", "controller.envs_per_worker=2"])
    monkeypatch.setattr(evaluation, "CHUNK_ROUNDS", 1)  # chunks of 2 episodes: [0, 1], [2, 3], [4]
    arguments = ["--run-dir", str(run_dir), "--params", "random", "--episodes", "5"]
    evaluate.main(arguments)
    uninterrupted = (run_dir / "eval_random" / "returns.json").read_bytes()

    played = []
    original = evaluation.random_policy_episodes

    def stopped_in_second_chunk(batch_env, env_config, generate_config, seeds, progress=None):
        if played:
            raise KeyboardInterrupt
        played.append(list(seeds))
        return original(batch_env, env_config, generate_config, seeds, progress)

    monkeypatch.setattr(evaluation, "random_policy_episodes", stopped_in_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        evaluate.main([*arguments, "--force"])
    assert not (run_dir / "eval_random" / "returns.json").exists() and not (run_dir / "eval_random" / "done.json").exists()
    partial = json.loads((run_dir / "eval_random" / evaluation.PARTIAL_NAME).read_text())
    assert [record["episode"] for record in partial["episodes"]] == [0, 1]

    played.clear()

    def recorded(batch_env, env_config, generate_config, seeds, progress=None):
        played.append(list(seeds))
        return original(batch_env, env_config, generate_config, seeds, progress)

    monkeypatch.setattr(evaluation, "random_policy_episodes", recorded)
    evaluate.main(arguments)
    assert played == [[1_000_002, 1_000_003], [1_000_004]]  # only the episodes the stopped run had not saved
    assert (run_dir / "eval_random" / "returns.json").read_bytes() == uninterrupted


def test_the_controllers_evaluation_is_untouched_and_the_seeds_match(tmp_path):
    run_dir = tmp_path / "run"
    config = make_run(run_dir, "doom-smoke", ["vae.z_size=8", "rnn.hidden_size=16", "rnn.num_mixtures=2", "env.max_steps=12", "evaluate.video=false"])
    controller = controller_from_config(config)
    store.save_params(run_dir / "controller" / "mean.npz", np.zeros(controller.num_params, np.float32), controller, generation=0)
    evaluate.main(["--run-dir", str(run_dir), "--episodes", "3"])
    controller_files = files_of(run_dir / "eval")
    config_before = (run_dir / "config.json").read_bytes()
    evaluate.main(["--run-dir", str(run_dir), "--episodes", "3", "--params", "random"])
    assert files_of(run_dir / "eval") == controller_files
    assert (run_dir / "config.json").read_bytes() == config_before  # evaluate.params still names the controller
    controller_episodes = json.loads((run_dir / "eval" / "returns.json").read_text())["episodes"]
    random_episodes = json.loads((run_dir / "eval_random" / "returns.json").read_text())["episodes"]
    assert [episode["seed"] for episode in random_episodes] == [episode["seed"] for episode in controller_episodes]


def test_seeds_outside_the_evaluation_range_are_refused_before_anything_is_written(tmp_path, capsys):
    run_dir = tmp_path / "run"
    config_only_run(run_dir, "doom-smoke", [])
    with pytest.raises(SystemExit) as exit_info:
        stage.run_main(evaluate.main, ["--run-dir", str(run_dir), "--params", "random", "--set", f"evaluate.seed={2**31 - 2}"])
    assert exit_info.value.code == 2
    assert "evaluation seeds must lie in [0, 2^31)" in capsys.readouterr().err
    assert not (run_dir / "eval_random").exists()
