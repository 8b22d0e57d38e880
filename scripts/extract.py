"""Encode every rollout with V into DIR/series/ (mu, logvar per frame, with actions, rewards, dones)
and the first-frame table DIR/series/initial_z.npz that dreams start from.

Paper, section 4.1. Resumable: a rerun encodes only the episodes not yet encoded;
--force starts over. Needs `scripts.train_vae` first; refuses V weights built
for a different z size.
"""

from scripts import stage


def main(argv=None):
    invocation = stage.parse("extract", __doc__, argv)
    config, run_dir = invocation.config, invocation.run_dir
    stage.begin(invocation, requires=("generate", "train_vae"))  # --force: source.json goes too

    from vae.extract import check_source, extract_series, weights_fingerprint
    from vae.store import load_part

    encoder = load_part(run_dir / "vae", "encoder", config.vae.z_size)
    check_source(run_dir / "series", weights_fingerprint(run_dir / "vae" / "encoder.weights.h5"), run_dir)
    summary = extract_series(run_dir / "rollouts", run_dir / "series", encoder, config.env.action_size, config.vae.extract_batch_size)
    stage.mark_done(run_dir, "extract", config, summary=summary)


if __name__ == "__main__":
    stage.run_main(main)
