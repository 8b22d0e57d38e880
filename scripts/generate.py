"""Collect random-policy rollouts into DIR/rollouts/<NNNNNN>.npz (paper, sections 4.1 and 5.1).

Episode i is played with seed generate.base_seed + i by one of
generate.num_workers processes (0: one per core) and written atomically, so
the files are the same whatever the worker count. Episodes of
<= generate.min_episode_steps steps are dropped (recorded as <NNNNNN>.dropped)
and further indices are played until generate.num_rollouts are kept. Rerun
the same command to resume: finished episodes are skipped. --force starts over.
"""

import os

from tqdm import tqdm

from env.collect import collect_rollouts
from env.rollouts import episode_length, list_episodes
from scripts import stage

STAGE = "generate"


def disk_totals(folder) -> tuple[int, int, int]:
    """(episodes, frames, bytes) of the rollout files in `folder`; reads only each file's small 'done' array."""
    episodes = list_episodes(folder)
    frames = sum(episode_length(path) for path in episodes)
    size = sum(path.stat().st_size for path in episodes)
    return len(episodes), frames, size


def main(argv=None):
    invocation = stage.parse(STAGE, __doc__, argv)
    config, run_dir = invocation.config, invocation.run_dir
    stage.begin(invocation)
    stage.clear_done(run_dir, STAGE)  # a rerun may add episodes (num_rollouts is not locked)
    folder = run_dir / stage.STAGES[STAGE][0]
    num_workers = config.generate.num_workers or os.cpu_count() or 1
    already = len(list_episodes(folder))
    target = config.generate.num_rollouts
    print(
        f"generate: {config.env.name}, {target} episodes of up to {config.env.max_steps} steps, policy {config.generate.policy}, "
        f"{num_workers} worker(s), {min(already, target)} already on disk in {folder}"
    )
    bar = tqdm(total=target, initial=min(already, target), unit="episode", dynamic_ncols=True)
    dropped = 0

    def progress(result):
        nonlocal dropped
        if result.kept:
            bar.update(1)
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
