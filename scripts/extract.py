"""Encode every rollout with V into DIR/series/ (mu, logvar per frame, with actions, rewards, dones)
and the first-frame table DIR/series/initial_z.npz that dreams start from.

Paper, section 4.1. Resumable: a rerun encodes only the episodes not yet encoded;
--force starts over. Needs `scripts.train_vae` first; refuses V weights built
for a different z size. Before writing anything it checks V's encoder, every
rollout, every series already made (unless --force) and the free disk space.
"""

from scripts import stage


def validate(invocation):
    """Every input, read before anything is written; returns the loaded encoder."""
    from common.disk import require_space
    from env.rollouts import episode_length, list_episodes
    from vae.extract import check_source, series_bytes, weights_fingerprint
    from vae.series import list_series, read_series
    from vae.store import load_part

    config, run_dir = invocation.config, invocation.run_dir
    run = invocation.layout
    encoder = load_part(run.vae, "encoder", config.vae)
    series_dir = run.series
    rollouts = list_episodes(run.rollouts)
    if not rollouts:
        raise stage.StageError(f"{run.rollouts} holds no rollout files; run `{stage.command_for('generate', run_dir)}`")
    lengths = {path.name: episode_length(path) for path in rollouts}
    done = set()
    if not invocation.arguments.force:
        check_source(series_dir, weights_fingerprint(run.vae_weights("encoder")), run_dir, record=False)
        for path in list_series(series_dir):
            read_series(path, config.vae.z_size, config.env.action_size)
            done.add(path.name)
    frames_left = sum(length for name, length in lengths.items() if name not in done)
    needed = series_bytes(frames_left, config.vae.z_size, config.env.action_size) + series_bytes(2 * len(rollouts), config.vae.z_size, 0)
    require_space(series_dir, needed, f"the series of {len(rollouts) - len(done)} episodes ({frames_left} frames)")
    return encoder


def main(argv=None):
    invocation = stage.parse("extract", __doc__, argv)
    config, run_dir = invocation.config, invocation.run_dir
    run = invocation.layout
    encoder = stage.begin(invocation, validate=validate)  # --force: source.json goes too

    from vae.extract import check_source, extract_series, weights_fingerprint

    check_source(run.series, weights_fingerprint(run.vae_weights("encoder")), run_dir)
    summary = extract_series(run.rollouts, run.series, encoder, config.env.action_size, config.vae.extract_batch_size)
    stage.mark_done(run_dir, "extract", config, summary=summary)


if __name__ == "__main__":
    stage.run_main(main)
