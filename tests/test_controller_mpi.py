"""MPI: `mpiexec -n 2` gives the results of one process; a failing rank ends the job, named."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from common.files import read_jsonl
from scripts import stage, train_controller
from tests.controller_fixtures import TINY_DOOM, make_run, vary_dream_deaths

REPO = Path(__file__).resolve().parents[1]
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")

pytestmark = [pytest.mark.mpi, pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found")]


def run(command, timeout=240):
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout)


def results(run_dir):
    records = read_jsonl(run_dir / "controller" / "metrics.jsonl")
    for record in records:
        record.pop("seconds")
    return np.load(run_dir / "controller" / "mean.npz")["params"], np.load(run_dir / "controller" / "best.npz")["params"], records


RANKING = [  # shared episodes, adaptive rollouts and the validation set's selected mean (issue 23)
    "controller.sigma_init=1.0",
    "controller.population_size=7",
    "controller.shared_episodes=true",
    "controller.adaptive_rollouts=true",
    "controller.max_rollouts_per_candidate=8",
    "controller.rank_reliability=0.99",
    "controller.eval_set=validation",
    "controller.num_generations=3",
]


@pytest.mark.parametrize("settings", [[], RANKING], ids=["defaults", "ranking"])
def test_two_ranks_give_the_results_of_one_process(tmp_path, settings):
    one, two = tmp_path / "one", tmp_path / "two"
    config = make_run(one, "doom-smoke", TINY_DOOM + ["controller.population_size=5", "controller.eval_rollouts=3"] + settings, with_vae=False)
    if settings:
        vary_dream_deaths(one, config)
    shutil.copytree(one, two)  # the same M
    train_controller.main(["--run-dir", str(one)])  # one process, this one (at 1 or 2 TensorFlow threads alike)
    stage.release_locks()
    double = run([MPIEXEC, "-n", "2", sys.executable, "-m", "scripts.train_controller", "--run-dir", str(two)])
    assert double.returncode == 0, double.stderr[-3000:]
    assert "2 rank(s)" in double.stdout
    mean_one, best_one, records_one = results(one)
    mean_two, best_two, records_two = results(two)
    assert len(records_one) == (3 if settings else 2)
    np.testing.assert_array_equal(mean_two, mean_one)
    np.testing.assert_array_equal(best_two, best_one)
    assert records_two == records_one
    if settings:
        assert len({record["rollouts"] for record in records_one}) > 1  # R changed along the way
        for name in ("params", "generation", "validation_return"):
            np.testing.assert_array_equal(np.load(two / "controller" / "selected.npz")[name], np.load(one / "controller" / "selected.npz")[name])


FAILING_JOB = textwrap.dedent(
    """
    import sys
    import numpy as np
    from controller.parallel import RankError, Workers, abort_on_error

    workers = Workers()
    where = sys.argv[1]

    def score(block):
        if workers.rank == 1:
            raise ValueError("boom on purpose")
        return np.zeros(block.stop - block.start)

    try:
        with abort_on_error(workers):
            if where == "outside" and workers.rank == 1:
                raise ValueError("boom outside any collective")
            workers.map_jobs(score, 8)
            workers.broadcast("next generation")
    except RankError as error:
        if workers.is_root:
            print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    """
)


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_a_raising_rank_ends_the_job_with_its_rank_and_cause(tmp_path, where):
    script = tmp_path / "failing_job.py"
    script.write_text(FAILING_JOB)
    finished = run([MPIEXEC, "-n", "2", sys.executable, str(script), where], timeout=120)  # a hang fails here
    assert finished.returncode != 0
    cause = "boom on purpose" if where == "inside" else "boom outside any collective"
    assert "rank 1 of 2 failed: ValueError: " + cause in finished.stderr
