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


def run_script(name: str, variables: dict) -> None:
    environment = {**os.environ, **{key: str(value) for key, value in variables.items()}}
    subprocess.run(["bash", str(ROOT / "experiments" / name)], env=environment, check=True, cwd=ROOT, timeout=1800)


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
def test_takecover_scripts_run_every_step_then_the_temperature_sweep(tmp_path):
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


def test_temperature_sweep_refuses_an_unfinished_run_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "missing"
    environment = {**os.environ, "RUN": str(run_dir), "TAUS": "1.3"}
    result = subprocess.run(
        ["bash", str(ROOT / "experiments" / "takecover_temperature.sh")], env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"{run_dir}/rollouts/done.json is missing" in result.stderr and "takecover_paper.sh" in result.stderr
    assert not run_dir.exists() and not (tmp_path / "missing-tau1.3").exists()
