"""Collect random-policy rollouts into DIR/rollouts/<NNNNNN>.npz (paper, sections 4.1 and 5.1).

Episode i is played with seed generate.base_seed + i by one of
generate.num_workers processes (0: one per core) and written atomically, so
the files are the same whatever the worker count. Episodes of
<= generate.min_episode_steps steps are dropped (recorded as <NNNNNN>.dropped)
and further indices are played until generate.num_rollouts are kept. Rerun
the same command to resume: finished episodes are skipped. --force starts over.

Disk space: before starting, and again after every kept episode, the bytes still to
write (mean size of the episode files so far x episodes left; before any exists, the
uncompressed size of env.max_steps frames for each episode of the first round) are
compared with the free space; the stage refuses to start, or stops, when they do not fit.
"""

import os

from tqdm import tqdm

from common.disk import megabytes, require_space
from env.collect import collect_rollouts
from env.frames import FRAME_SHAPE
from env.rollouts import episode_length, episode_path, list_episodes
from scripts import stage

STAGE = "generate"


def frame_bytes(action_size: int) -> int:
    """Uncompressed bytes of one step in a rollout file (an upper bound: files are compressed)."""
    return FRAME_SHAPE[0] * FRAME_SHAPE[1] * FRAME_SHAPE[2] + 4 * action_size + 4 + 1


class SpaceEstimate:
    """Bytes generate still has to write, from the episode files written so far."""

    def __init__(self, folder, config, num_workers: int, sizes: list[int]):
        self.folder, self.config, self.num_workers = folder, config, num_workers
        self.files, self.total = len(sizes), sum(sizes)

    def needed(self) -> int:
        left = max(self.config.generate.num_rollouts - self.files, 0)
        if self.files:
            return round(self.total / self.files * left)
        # nothing measured yet: the first round of episodes at full length, uncompressed
        return min(left, self.num_workers) * self.config.env.max_steps * frame_bytes(self.config.env.action_size)

    def add(self, index: int) -> None:
        self.files += 1
        self.total += episode_path(self.folder, index).stat().st_size

    def check(self) -> None:
        require_space(self.folder, self.needed(), f"{self.config.generate.num_rollouts - self.files} more episodes")


def validate(invocation) -> SpaceEstimate:
    """Before anything is written: DIR is not an exported agent (whose data would be gigabytes in
    a folder meant to stay small), the drop rule can keep episodes, every episode file already
    there is readable (unless --force discards them), and the disk can hold what is left."""
    config, folder = invocation.config, invocation.run_dir / stage.STAGES[STAGE].folder
    if stage.is_exported_agent(invocation.run_dir):
        raise stage.StageError(f"{stage.exported_agent_note(invocation.run_dir)}. {stage.exported_agent_advice(invocation.run_dir)}")
    if config.generate.min_episode_steps >= config.env.max_steps:
        raise stage.StageError(
            f"generate.min_episode_steps={config.generate.min_episode_steps} >= env.max_steps={config.env.max_steps}: every episode would be dropped"
        )
    existing = [] if invocation.arguments.force else list_episodes(folder)
    for path in existing:
        episode_length(path)  # a RolloutError naming the file and the command that remakes it
    num_workers = config.generate.num_workers or os.cpu_count() or 1
    estimate = SpaceEstimate(folder, config, num_workers, [path.stat().st_size for path in existing])
    estimate.check()
    return estimate


def disk_totals(folder) -> tuple[int, int, int]:
    """(episodes, frames, bytes) of the rollout files in `folder`; reads only each file's small 'done' array."""
    episodes = list_episodes(folder)
    frames = sum(episode_length(path) for path in episodes)
    size = sum(path.stat().st_size for path in episodes)
    return len(episodes), frames, size


def main(argv=None):
    invocation = stage.parse(STAGE, __doc__, argv)
    config, run_dir = invocation.config, invocation.run_dir
    space = stage.begin(invocation, validate=validate)
    stage.clear_done(run_dir, STAGE)  # a rerun may add episodes (num_rollouts is not locked)
    folder = run_dir / stage.STAGES[STAGE].folder
    num_workers = space.num_workers
    already = space.files
    target = config.generate.num_rollouts
    print(
        f"generate: {config.env.name}, {target} episodes of up to {config.env.max_steps} steps, policy {config.generate.policy}, "
        f"{num_workers} worker(s), {min(already, target)} already on disk in {folder}; about {megabytes(space.needed())} to write"
        + ("" if already else " at most (uncompressed first round; measured after it)")
    )
    bar = tqdm(total=target, initial=min(already, target), unit="episode", dynamic_ncols=True)
    dropped = 0

    def progress(result):
        nonlocal dropped
        if result.kept:
            bar.update(1)
            space.add(result.index)
            space.check()  # stops before the disk fills, with what is needed and free
        else:
            dropped += 1
            bar.set_postfix(dropped=dropped)

    try:
        summary = collect_rollouts(folder, config.env, config.generate, num_workers, progress=progress)
    except ValueError as error:
        raise stage.StageError(str(error)) from None
    finally:
        bar.close()
    episodes, frames, size = disk_totals(folder)
    seconds = summary.seconds
    steps_per_second = summary.new_steps / seconds if seconds > 0 else 0.0
    print(
        f"generate: {episodes} episodes, {frames} frames, {size / 1e6:.1f} MB on disk; this run: {summary.new_episodes} new, "
        f"{summary.dropped_episodes} dropped (<= {config.generate.min_episode_steps} steps), {summary.new_steps} steps in {seconds:.1f} s "
        f"= {steps_per_second:.0f} steps/s"
    )
    stage.mark_done(
        run_dir,
        STAGE,
        config,
        summary={"episodes": episodes, "frames": frames, "bytes": size, "new_episodes": summary.new_episodes, "steps_per_second": steps_per_second},
    )


if __name__ == "__main__":
    stage.run_main(main)
