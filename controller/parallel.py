"""MPI parallelism for CMA-ES (paper, section 4.3: the population is scored in parallel).

`mpiexec -n N python -m scripts.train_controller ...` starts N ranks; every rank
runs the same training loop. Rank 0 alone owns CMA-ES: it asks for the
candidates and broadcasts them; each rank scores its contiguous share of the
generation's (candidate, rollout) jobs; the returns are gathered on every rank
and rank 0 tells CMA-ES. Without mpiexec it is one process (size 1) doing
every job, with the same results, since each job's randomness depends only on
its own seed.

Failures never hang the job:
- inside `map_jobs` / `guarded`, every rank sends (ok, result or error) to every
  other rank; if any failed, all ranks raise the same RankError naming the
  first failing rank and its cause, and exit cleanly;
- anything raised elsewhere on one rank alone is caught by `abort_on_error`,
  which prints the rank and the cause and calls MPI Abort, ending every rank.
"""

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from common.errors import UserError
from common.stopping import signal_of, stopped_message

ABORT_GRACE_SECONDS = 1.0  # time for mpiexec to forward a failing rank's message before Abort ends every rank


class RankError(RuntimeError):
    """A rank failed; raised on every rank with the same message."""

    def __init__(self, message: str, user_error: bool = False):
        super().__init__(message)
        self.user_error = user_error  # the cause was a bad file or config, not a bug


def _communicator():
    """MPI.COMM_WORLD, or None if mpi4py or its MPI library is unavailable (one process)."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI.COMM_WORLD


class Workers:
    """The MPI ranks of this job (or just this process)."""

    def __init__(self, communicator: Any = "world"):
        self.communicator = _communicator() if communicator == "world" else communicator
        self.rank = self.communicator.Get_rank() if self.communicator is not None else 0
        self.size = self.communicator.Get_size() if self.communicator is not None else 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def share(self, num_jobs: int) -> slice:
        """This rank's contiguous block of jobs 0..num_jobs-1 (blocks differ in size by at most one)."""
        bounds = np.linspace(0, num_jobs, self.size + 1).round().astype(int)
        return slice(int(bounds[self.rank]), int(bounds[self.rank + 1]))

    def broadcast(self, value: Any) -> Any:
        """Rank 0's value on every rank."""
        if self.size == 1:
            return value
        return self.communicator.bcast(value, root=0)

    def barrier(self) -> None:
        if self.size > 1:
            self.communicator.Barrier()

    def guarded(self, function: Callable[[], Any]) -> Any:
        """Run `function` on every rank; if it raised on any rank, raise RankError on all of them.

        Returns this rank's own result. With one process, errors pass through unchanged.
        """
        if self.size == 1:
            return function()
        try:
            outcome = (True, function())
        except Exception as error:  # reported to every rank below
            outcome = (False, _describe(error, self.rank, self.size))
        outcomes = self.communicator.allgather((outcome[0], None if outcome[0] else outcome[1]))
        failures = [(rank, detail) for rank, (ok, detail) in enumerate(outcomes) if not ok]
        if failures:
            rank, (message, user_error) = failures[0]
            raise RankError(message, user_error=user_error)
        return outcome[1]

    def map_jobs(self, function: Callable[[slice], np.ndarray], num_jobs: int) -> np.ndarray:
        """Split jobs 0..num_jobs-1 across ranks; `function(block)` returns this rank's results
        (one row per job); the concatenation of all blocks in job order is returned on every rank."""
        block = self.share(num_jobs)

        def compute():
            result = np.asarray(function(block))
            if len(result) != block.stop - block.start:
                raise ValueError(f"jobs {block.start}..{block.stop - 1} gave {len(result)} results")
            return result

        mine = self.guarded(compute)
        if self.size == 1:
            return mine
        return np.concatenate(self.communicator.allgather(mine), axis=0)


def _describe(error: BaseException, rank: int, size: int) -> tuple[str, bool]:
    user_error = isinstance(error, UserError)
    where = f"rank {rank} of {size}" if size > 1 else "the worker"
    message = f"{where} failed: {type(error).__name__}: {error}"
    if not user_error:
        trace = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-6:])
        message += f"\n{where} traceback (last frames):\n{trace}"
    return message, user_error


@contextlib.contextmanager
def abort_on_error(workers: Workers, exit_status: int = 1) -> Iterator[None]:
    """For entry points under mpiexec: an exception escaping on one rank alone would leave the
    others waiting forever in the next collective; print the rank and the cause, then Abort
    every rank. A RankError (already raised on all ranks alike) passes through. With one
    process, exceptions pass through unchanged."""
    try:
        yield
    except RankError:
        raise
    except KeyboardInterrupt as interrupt:
        if workers.size == 1:
            raise
        # A stop signal (mpiexec passes SIGTERM/SIGINT to every rank): exit now. A rank blocked in a
        # collective never sees its signal, so finalizing would wait for it; mpiexec ends it instead.
        # Every file is written atomically, so a rerun resumes from the last finished generation.
        signum = signal_of(interrupt)
        if workers.is_root:
            print(stopped_message(signum), file=sys.stderr, flush=True)
        os._exit(128 + signum)
    except BaseException as error:
        if workers.size == 1:
            raise
        if isinstance(error, SystemExit):  # --help, argparse errors: end the other ranks too
            workers.communicator.Abort(error.code if isinstance(error.code, int) else 1)
        message, _ = _describe(error, workers.rank, workers.size)
        print(f"error: {message}", file=sys.stderr, flush=True)
        # Abort ends every process at once; mpiexec forwards a rank's output through its own pipes,
        # and a message still in them was lost (about 1 run in 13): give it a moment to arrive.
        time.sleep(ABORT_GRACE_SECONDS)
        workers.communicator.Abort(exit_status)
