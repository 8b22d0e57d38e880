"""Check V: write DIR/vae/reconstructions.png and print the mean held-out reconstruction error.

The picture shows held-out frames, their reconstructions with each one's error
(summed squared error, the loss's reconstruction term), and frames decoded from
z ~ N(0, I). Needs `scripts.train_vae` first.
"""

from scripts import stage


def add_arguments(parser):
    parser.add_argument("--num-frames", type=int, default=8, help="frames per row of the picture (default 8)")


def validate(invocation):
    """Before --force removes the picture: the argument, V's weights and the rollouts; returns (encoder, decoder)."""
    from vae import data
    from vae.store import load_encoder_decoder

    run_dir = invocation.run_dir
    if invocation.arguments.num_frames < 1:
        raise stage.StageError(f"--num-frames {invocation.arguments.num_frames}: expected at least 1")
    data.rollout_files(run_dir / "rollouts")  # an error naming the command if there are none
    return load_encoder_decoder(run_dir / "vae", invocation.config.vae)


def main(argv=None):
    invocation = stage.parse("check_vae", __doc__, argv, add_arguments=add_arguments)
    config, run_dir = invocation.config, invocation.run_dir
    encoder, decoder = stage.begin(invocation, validate=validate)

    from vae import data
    from vae.reconstruction import reconstruction_figure, scan_episodes

    training, held_out = data.split_episodes(data.rollout_files(run_dir / "rollouts"), config.vae.validation_fraction, config.vae.seed)
    source = "held-out"
    if not held_out:
        held_out, source = training, "training (no episodes held out)"
    frames, mean_error, num_frames = scan_episodes(encoder, decoder, held_out, invocation.arguments.num_frames, config.vae.extract_batch_size)
    output = run_dir / "vae" / "reconstructions.png"
    title = f"{config.env.name} {config.vae.kind}, z={config.vae.z_size}: mean {source} error {mean_error:.1f} over {num_frames} frames"
    reconstruction_figure(encoder, decoder, frames, output, title, seed=config.vae.seed)
    print(f"check_vae: mean {source} reconstruction error {mean_error:.2f} (summed squared error per image over {num_frames} frames); picture: {output}")


if __name__ == "__main__":
    stage.run_main(main)
