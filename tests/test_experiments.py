"""The experiment scripts behind the README's results (experiments/*.sh), on smoke settings:
every step runs, the TakeCover temperature sweep reuses the run's V and M, the CarRacing
comparison picks the better mean on the same tracks, the final scores use gymnasium's own
renderer, and a rerun plays nothing again. Slow (minutes): opt in with
`./run.sh test -m slow tests/test_experiments.py`."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def run_script(name: str, variables: dict, arguments: tuple[str, ...] = ()) -> None:
    environment = {**os.environ, **{key: str(value) for key, value in variables.items()}}
    subprocess.run(["bash", str(ROOT / "experiments" / name), *arguments], env=environment, check=True, cwd=ROOT, timeout=1800)


def stage_statuses(run_dir: Path) -> list[str]:
    return [line.split()[-1] for line in (run_dir / "stages.log").read_text().splitlines() if " end " in line]


@pytest.mark.slow
def test_carracing_cpu_script_compares_then_trains_the_winner(tmp_path):
    run_dir, side_dir = tmp_path / "run", tmp_path / "side"
    variables = dict(RUN=run_dir, SIDE=side_dir, PRESET="carracing-smoke", COMPARE_GENERATIONS=2, GENERATIONS=3, EVAL_EVERY=3, EPISODES=3, RANKS=2)
    run_script("carracing_cpu.sh", variables)
    assert stage_statuses(run_dir) and set(stage_statuses(run_dir)) == {"0"}
    comparison = json.loads((run_dir / "compare.json").read_text())
    scores = comparison["scores"]
    assert comparison["generation"] == 1 and set(scores) == {str(run_dir), str(side_dir)}
    assert comparison["winner"] == max(scores, key=lambda run: scores[run]["mean"])
    for run, population, rollouts in ((run_dir, 16, 4), (side_dir, 64, 1)):
        config = json.loads((run / "config.json").read_text())["controller"]
        assert (config["population_size"], config["rollouts_per_candidate"]) == (population, rollouts)
    winner = Path(comparison["winner"])
    records = [json.loads(line) for line in (winner / "controller" / "metrics.jsonl").read_text().splitlines()]
    assert [record["generation"] for record in records] == [0, 1, 2]
    # the comparison's score of the mean is the one recorded at its last generation
    assert records[1]["mean_params_return"] == scores[str(winner)]["mean"]
    summary = json.loads((winner / "eval" / "summary.json").read_text())
    assert summary["env_renderer"] == "stock" and summary["episodes"] == 3 and summary["controller_generation"] == 2
    assert json.loads((winner / "eval_random" / "summary.json").read_text())["env_renderer"] == "stock"
    assert list((winner / "dream").glob("*.mp4"))

    returns = winner / "eval" / "returns.json"
    stamp = returns.stat().st_mtime_ns
    run_script("carracing_cpu.sh", variables)  # a rerun: everything is finished
    assert returns.stat().st_mtime_ns == stamp
    assert json.loads((run_dir / "compare.json").read_text()) == comparison
    assert set(stage_statuses(run_dir)) == {"0"}


@pytest.mark.slow
def test_takecover_scripts_run_every_step_then_the_temperature_sweep_and_the_vaegan(tmp_path):
    run_dir = tmp_path / "run"
    run_script("takecover_paper.sh", dict(RUN=run_dir, PRESET="doom-smoke", EPISODES=3, RANKS=2))
    assert [line.split()[2] for line in (run_dir / "stages.log").read_text().splitlines() if " end " in line] == [
        "generate",
        "train_vae",
        "pipeline",
        "fidelity",
        "evaluate-random",
    ]
    assert set(stage_statuses(run_dir)) == {"0"}
    assert json.loads((run_dir / "eval" / "summary.json").read_text())["episodes"] == 3
    report = json.loads((run_dir / "fidelity" / "report.json").read_text())
    assert "random_policy" in report and "done_calibration" in report
    assert json.loads((run_dir / "eval_random" / "summary.json").read_text())["episodes"] == 3

    # the temperature sweep on that run: C again at another tau, with the run's own V and M
    run_script("takecover_temperature.sh", dict(RUN=run_dir, TAUS="1.3", EPISODES=3, RANKS=2))
    branch = tmp_path / "run-tau1.3"
    assert [line.split()[2] for line in (run_dir / "stages.log").read_text().splitlines() if " end " in line][-2:] == ["tau1.3/pipeline", "tau1.3/fidelity"]
    assert set(stage_statuses(run_dir)) == {"0"}
    for folder in ("vae", "series", "rnn"):
        assert (branch / folder).resolve() == (run_dir / folder).resolve()
    assert json.loads((branch / "config.json").read_text())["controller"]["temperature"] == 1.3
    assert json.loads((run_dir / "config.json").read_text())["controller"]["temperature"] == 1.15
    assert json.loads((branch / "fidelity" / "report.json").read_text())["temperature"] == 1.3
    summary = json.loads((branch / "eval" / "summary.json").read_text())
    assert summary["episodes"] == 3 and summary != json.loads((run_dir / "eval" / "summary.json").read_text())

    # V as a VAE/GAN on the run's own rollouts, both V's checked on the same held-out frames
    run_script("vaegan_beside_vae.sh", dict(RUN=run_dir))
    vaegan = tmp_path / "run-vaegan"
    assert [line.split()[2] for line in (vaegan / "stages.log").read_text().splitlines() if " end " in line] == [
        "train_vae",
        "check_vae-vaegan",
        "check_vae-vae",
    ]
    assert set(stage_statuses(vaegan)) == {"0"}
    assert (vaegan / "rollouts").resolve() == (run_dir / "rollouts").resolve()
    config = json.loads((vaegan / "config.json").read_text())["vae"]
    assert config["kind"] == "vaegan" and config["epochs"] == json.loads((run_dir / "config.json").read_text())["vae"]["epochs"]
    assert (vaegan / "vae" / "reconstructions.png").exists() and (vaegan / "vae_reconstructions.png").exists()
    assert (vaegan / "compare.log").read_text().count("held-out") >= 2


def test_temperature_sweep_refuses_an_unfinished_run_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "missing"
    environment = {**os.environ, "RUN": str(run_dir), "TAUS": "1.3"}
    result = subprocess.run(
        ["bash", str(ROOT / "experiments" / "takecover_temperature.sh")], env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"{run_dir}/rollouts/done.json is missing" in result.stderr and "takecover_paper.sh" in result.stderr
    assert not run_dir.exists() and not (tmp_path / "missing-tau1.3").exists()


@pytest.mark.slow
def test_carracing_from_agent_trains_c_alone_from_an_export(tmp_path):
    """A C-only run from an exported agent: no data, V or M made; CMA-ES starts at the agent's
    mean (recorded in config.json), the selected mean is scored on two stock seed sets, the
    export is left as it was, and a rerun plays nothing again."""
    import hashlib

    import numpy as np

    from controller.es import EvolutionStrategy
    from scripts import export_agent, train_controller
    from tests.controller_fixtures import TINY_CARRACING, make_run

    source, agent, run_dir = tmp_path / "source", tmp_path / "agent", tmp_path / "run"
    make_run(source, "carracing-smoke", TINY_CARRACING)
    train_controller.main(["--run-dir", str(source)])
    export_agent.main(["--run-dir", str(source), "--to", str(agent)])
    variables = dict(AGENT=agent, RUN=run_dir, GENERATIONS=2, EVAL_EVERY=1, EPISODES=2, SECOND_SEED=5000, RANKS=2)
    arguments = ["--set", "controller.eval_rollouts=2", "--set", "controller.shared_episodes=true"]
    run_script("carracing_from_agent.sh", variables, arguments)
    assert [line.split()[2] for line in (run_dir / "stages.log").read_text().splitlines() if " end " in line] == [
        "train_controller",
        "evaluate",
        "evaluate-seed5000",
    ]
    assert set(stage_statuses(run_dir)) == {"0"}
    for folder in ("vae", "rnn", "series"):
        assert (run_dir / folder).resolve() == (agent / folder).resolve()
    assert not (run_dir / "rollouts").exists()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["controller"]["init_from"] == f"{agent.resolve()}:mean" and config["controller"]["shared_episodes"]
    agent_mean = np.load(agent / "controller" / "mean.npz")["params"]
    np.testing.assert_array_equal(EvolutionStrategy.load(run_dir / "controller" / "es_state.pkl", agent_mean.size).strategy.x0, agent_mean)
    assert (run_dir / "controller" / "selected.npz").exists()
    for folder, first_seed in (("eval", 1_000_000), ("eval_seed5000", 5000)):
        summary = json.loads((run_dir / folder / "summary.json").read_text())
        assert summary["params"] == "selected" and summary["env_renderer"] == "stock" and summary["first_seed"] == first_seed
    record = json.loads((agent / "EXPORTED.json").read_text())
    for name, entry in record["files"].items():
        assert hashlib.sha256((agent / name).read_bytes()).hexdigest() == entry["sha256"], name
    assert {path.name for path in agent.iterdir()} == {"EXPORTED.json", "config.json", "vae", "rnn", "series", "controller"}

    returns = run_dir / "eval" / "returns.json"
    stamp = returns.stat().st_mtime_ns
    run_script("carracing_from_agent.sh", variables, arguments)  # a rerun: everything is finished
    assert returns.stat().st_mtime_ns == stamp and set(stage_statuses(run_dir)) == {"0"}


def test_carracing_from_agent_refuses_a_folder_that_is_not_an_export_and_writes_nothing(tmp_path):
    run_dir, agent = tmp_path / "run", tmp_path / "not-an-export"
    agent.mkdir()
    environment = {**os.environ, "RUN": str(run_dir), "AGENT": str(agent)}
    result = subprocess.run(
        ["bash", str(ROOT / "experiments" / "carracing_from_agent.sh")], env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"{agent}/EXPORTED.json is missing" in result.stderr and "scripts.export_agent" in result.stderr
    assert not run_dir.exists() and list(agent.iterdir()) == []


@pytest.mark.slow
def test_takecover_done_rules_trains_each_arm_from_the_agent_and_compares_them_on_the_same_episodes(tmp_path):
    import numpy as np

    from scripts import export_agent, train_controller
    from tests.controller_fixtures import TINY_DOOM, make_run

    source, agent, run_dir = tmp_path / "source", tmp_path / "agent", tmp_path / "run"
    # episodes of up to 400 steps, so that the random policy dies in calibrate's fresh episodes
    make_run(source, "doom-smoke", [*TINY_DOOM, "env.max_steps=400", "controller.eval_every=0"])
    train_controller.main(["--run-dir", str(source)])
    export_agent.main(["--run-dir", str(source), "--to", str(agent)])
    variables = dict(AGENT=agent, RUN=run_dir, GENERATIONS=3, EPISODES=3, SECOND_SEED=5000, CALIBRATION_EPISODES=2)
    run_script("takecover_done_rules.sh", variables)
    assert set(stage_statuses(run_dir)) == {"0"}
    assert (run_dir / "base" / "rnn" / "calibration.json").exists() and not (agent / "rnn" / "calibration.json").exists()
    comparison = json.loads((run_dir / "compare.json").read_text())
    arms = ("threshold", "sampled", "sampled-shared")
    assert set(comparison["scores"]) == {"base", *arms}
    agent_mean = np.load(agent / "controller" / "mean.npz")["params"]
    for arm in arms:
        config = json.loads((run_dir / arm / "config.json").read_text())["controller"]
        assert (config["done_rule"], config["shared_episodes"]) == ("threshold" if arm == "threshold" else "sampled", arm == "sampled-shared")
        assert config["init_from"] == f"{run_dir / 'base'}:mean" and config["num_generations"] == 3
        assert (run_dir / arm / "rnn").resolve() == (run_dir / "base" / "rnn").resolve()
        assert not np.array_equal(np.load(run_dir / arm / "controller" / "mean.npz")["params"], agent_mean)
    for name, scores in comparison["scores"].items():
        for label, folder, first_seed in (("validation", "eval_validation", 2**29), ("evaluate", "eval", 1_000_000), ("seed5000", "eval_seed5000", 5000)):
            episodes = json.loads((run_dir / name / folder / "returns.json").read_text())["episodes"]
            returns = [episode["return"] for episode in sorted(episodes, key=lambda episode: episode["seed"])]
            base = json.loads((run_dir / "base" / folder / "returns.json").read_text())["episodes"]
            base_returns = [episode["return"] for episode in sorted(base, key=lambda episode: episode["seed"])]
            assert min(episode["seed"] for episode in episodes) == first_seed and scores[label]["episodes"] == 3
            assert scores[label]["mean"] == pytest.approx(np.mean(returns)) and scores[label]["std"] == pytest.approx(np.std(returns))
            assert scores[label]["minus_base"] == pytest.approx(np.mean(returns) - np.mean(base_returns))
        if name == "base":
            assert scores["validation"]["minus_base"] == 0
    chosen = comparison["chosen_on_validation"]
    assert comparison["scores"][chosen]["validation"]["mean"] == max(scores["validation"]["mean"] for scores in comparison["scores"].values())

    returns = run_dir / "sampled" / "eval" / "returns.json"
    stamp = returns.stat().st_mtime_ns
    run_script("takecover_done_rules.sh", variables)  # a rerun: everything is finished
    assert returns.stat().st_mtime_ns == stamp and set(stage_statuses(run_dir)) == {"0"}
    assert json.loads((run_dir / "compare.json").read_text()) == comparison


def test_takecover_done_rules_refuses_an_unknown_arm_or_a_folder_that_is_not_an_export_and_writes_nothing(tmp_path):
    run_dir, agent = tmp_path / "run", tmp_path / "not-an-export"
    agent.mkdir()
    for arms, status, message in (
        ("sampled dropout", 2, "ARMS holds 'dropout': expected threshold, sampled or sampled-shared"),
        ("threshold sampled", 1, f"{agent}/EXPORTED.json is missing"),
    ):
        environment = {**os.environ, "RUN": str(run_dir), "AGENT": str(agent), "ARMS": arms}
        result = subprocess.run(
            ["bash", str(ROOT / "experiments" / "takecover_done_rules.sh")], env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == status and message in result.stderr, result.stderr
        assert not run_dir.exists() and list(agent.iterdir()) == []


@pytest.mark.slow
def test_carracing_equal_budget_plays_generations_until_the_budget_then_scores_the_mean(tmp_path):
    from scripts import export_agent, train_controller
    from tests.controller_fixtures import TINY_CARRACING, make_run

    source, agent = tmp_path / "source", tmp_path / "agent"
    make_run(source, "carracing-smoke", TINY_CARRACING)
    train_controller.main(["--run-dir", str(source)])
    export_agent.main(["--run-dir", str(source), "--to", str(agent)])
    arms = {
        "fixed": ["--set", "controller.population_size=4", "--set", "controller.rollouts_per_candidate=1"],
        "adaptive": [
            *("--set", "controller.population_size=2", "--set", "controller.rollouts_per_candidate=2"),
            *("--set", "controller.shared_episodes=true", "--set", "controller.adaptive_rollouts=true", "--set", "controller.max_rollouts_per_candidate=4"),
        ],
    }
    for name, settings in arms.items():
        run_dir = tmp_path / name
        variables = dict(AGENT=agent, RUN=run_dir, EPISODES=2, SEED=7000)
        run_script("carracing_equal_budget.sh", variables, ("9", *settings))
        assert set(stage_statuses(run_dir)) == {"0"}
        population = int(settings[1].split("=")[1])
        records = [json.loads(line) for line in (run_dir / "controller" / "metrics.jsonl").read_text().splitlines()]
        played = [population * sum(record["rollouts"] for record in records[: index + 1]) for index in range(len(records))]
        assert played[-1] >= 9 and (len(played) == 1 or played[-2] < 9), played  # stopped at the first generation past the budget
        config = json.loads((run_dir / "config.json").read_text())["controller"]
        assert config["init_from"] == f"{agent.resolve()}:mean" and config["population_size"] == population
        summary = json.loads((run_dir / "eval_seed7000" / "summary.json").read_text())
        assert (summary["first_seed"], summary["episodes"], summary["params"], summary["controller_generation"]) == (7000, 2, "mean", len(records) - 1)
        returns = run_dir / "eval_seed7000" / "returns.json"
        stamp = returns.stat().st_mtime_ns
        run_script("carracing_equal_budget.sh", variables, ("9", *settings))  # a rerun: nothing is played again
        assert returns.stat().st_mtime_ns == stamp
        assert len((run_dir / "controller" / "metrics.jsonl").read_text().splitlines()) == len(records)
    assert json.loads((tmp_path / "adaptive" / "controller" / "metrics.jsonl").read_text().splitlines()[0])["rollouts"] == 2


def test_carracing_equal_budget_refuses_a_missing_budget_or_population_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    for arguments in ((), ("1920",), ("many", "--set", "controller.population_size=64")):
        environment = {**os.environ, "RUN": str(run_dir)}
        result = subprocess.run(
            ["bash", str(ROOT / "experiments" / "carracing_equal_budget.sh"), *arguments], env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2 and "expected BUDGET (training episodes, a positive integer) then --set controller.population_size=N" in result.stderr
        assert not run_dir.exists()
