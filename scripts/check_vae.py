"""Check V: write DIR/vae/reconstructions.png and print the mean held-out reconstruction error.

The picture shows held-out frames, their reconstructions with each one's error
(summed squared error, the loss's reconstruction term), and frames decoded from
z ~ N(0, I). Needs `scripts.train_vae` first.

A run without rollouts, such as an exported agent (pretrained/doom), is checked on freshly
played frames instead: --episodes new episodes (default 3) of the run's random data-collection
policy, the kind of frames V was trained on, on seeds --seed + k that no other stage plays,
collected by generate's own code into a temporary folder that is removed afterwards. The
picture and the printed line say so. --out writes the picture elsewhere (git ignores
pretrained/*/vae/reconstructions.png).
"""

import dataclasses
import tempfile
from pathlib import Path

from common.layout import RECONSTRUCTIONS_NAME
from scripts import stage

# Not a seed of generate (base_seed + i), evaluate (1,000,000 + k), fidelity (500,000,000 + k),
# validation ([2^29, 2^30)), iterate ([2^30, 2^31)) or CMA-ES training ([2^31, 2^32)): V and C never
# saw these episodes (controller/seeds.py has the map).
FRESH_FIRST_SEED = 400_000_000
MAX_FRESH_SEED = 2**29  # the validation seeds start here


def add_arguments(parser):
    parser.add_argument("--num-frames", type=int, default=8, help="frames per row of the picture (default 8)")
    parser.add_argument("--episodes", type=int, default=3, help="fresh episodes to play when DIR holds no rollouts, e.g. an exported agent (default 3)")
    parser.add_argument("--seed", type=int, default=FRESH_FIRST_SEED, help=f"fresh episode k is played on seed SEED + k (default {FRESH_FIRST_SEED:,})")
    parser.add_argument("--out", type=Path, help="where to write the picture (default DIR/vae/reconstructions.png)")


def validate(invocation):
    """Before --force removes the picture: the arguments and V's weights; returns (encoder, decoder)."""
    from vae.store import load_encoder_decoder

    arguments = invocation.arguments
    if arguments.num_frames < 1:
        raise stage.StageError(f"--num-frames {arguments.num_frames}: expected at least 1")
    if arguments.episodes < 1:
        raise stage.StageError(f"--episodes {arguments.episodes}: expected at least 1")
    if not 0 <= arguments.seed < MAX_FRESH_SEED:
        raise stage.StageError(f"--seed {arguments.seed}: expected 0 <= seed < 2^29 (the validation episodes start at 2^29)")
    return load_encoder_decoder(invocation.layout.vae, invocation.config.vae)


def training_caption(config, run_dir: Path) -> str:
    """A line for the picture saying what V was trained on (DIR/vae/done.json): a smoke preset's V,
    a few hundred steps on about a thousand frames, draws blur, and its picture says so."""
    from common.files import read_json

    summary = read_json(stage.done_path(run_dir, "train_vae")).get("summary", {})
    counts = [(summary.get("training_frames"), "frame"), (summary.get("epochs_completed"), "epoch"), (summary.get("steps"), "step")]
    trained = ", ".join(f"{count:,} {unit}{'' if count == 1 else 's'}" for count, unit in counts if count is not None)
    trained = f"trained on {trained}" if trained else "trained"
    if str(config.preset).endswith("-smoke"):
        return f"smoke V (preset {config.preset}), {trained}: expect blur; a V trained by the full preset draws the scene (docs/results.md)"
    return f"V (preset {config.preset}), {trained}"


def play_fresh_episodes(config, folder: Path, episodes: int, first_seed: int) -> list[Path]:
    """`episodes` new episodes of the run's random data-collection policy, played and written to
    `folder` by generate's own code on seeds first_seed + i (an episode generate would drop, of
    <= generate.min_episode_steps steps, is replaced by the next seed, as generate does)."""
    from env.collect import collect_rollouts
    from env.rollouts import list_episodes

    # CarRacing's fast renderer draws the stock renderer's frames bit for bit, ~2.7x as fast (env/carracing_fast.py)
    env_config = dataclasses.replace(config.env, carracing_renderer="fast")
    collect_rollouts(folder, env_config, dataclasses.replace(config.generate, num_rollouts=episodes, base_seed=first_seed))
    return list_episodes(folder)


def main(argv=None):
    invocation = stage.parse("check_vae", __doc__, argv, add_arguments=add_arguments)
    config, run_dir, arguments = invocation.config, invocation.run_dir, invocation.arguments
    run = invocation.layout
    encoder, decoder = stage.begin(invocation, validate=validate)

    from env.rollouts import episode_index, list_episodes
    from vae import data
    from vae.reconstruction import reconstruction_figure, scan_episodes

    output = arguments.out or run.vae / RECONSTRUCTIONS_NAME
    output.parent.mkdir(parents=True, exist_ok=True)
    title = f"{config.env.name} {config.vae.kind}, z={config.vae.z_size}"
    caption = training_caption(config, run_dir)
    rollouts = list_episodes(run.rollouts)
    if rollouts:
        training, held_out = data.split_episodes(rollouts, config.vae.validation_fraction, config.vae.seed)
        source = "held-out"
        if not held_out:
            held_out, source = training, "training (no episodes held out)"
        frames, mean_error, num_frames = scan_episodes(encoder, decoder, held_out, arguments.num_frames, config.vae.extract_batch_size)
        reconstruction_figure(
            encoder, decoder, frames, output, f"{title}: mean {source} error {mean_error:.1f} over {num_frames} frames\n{caption}", seed=config.vae.seed
        )
        print(f"check_vae: mean {source} reconstruction error {mean_error:.2f} (summed squared error per image over {num_frames} frames); picture: {output}")
        return

    what = "an exported agent ships none" if stage.is_exported_agent(run_dir) else "none on disk"
    print(
        f"check_vae: {run.rollouts} holds no rollouts ({what}): playing {arguments.episodes} fresh episodes of the random "
        f"data-collection policy ('{config.generate.policy}') on seeds {arguments.seed} + k into a temporary folder",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="check_vae-") as folder:
        episodes = play_fresh_episodes(config, Path(folder), arguments.episodes, arguments.seed)
        frames, mean_error, num_frames = scan_episodes(encoder, decoder, episodes, arguments.num_frames, config.vae.extract_batch_size)
    seeds = ", ".join(str(arguments.seed + episode_index(path)) for path in episodes)
    played = f"{num_frames} freshly played frames ({len(episodes)} new episodes of the random policy, seeds {seeds})"
    reconstruction_figure(
        encoder,
        decoder,
        frames,
        output,
        f"{title}: mean error {mean_error:.1f} over {played}\n{caption}",
        seed=config.vae.seed,
        frames_label="freshly played\nframes",
    )
    print(f"check_vae: mean reconstruction error {mean_error:.2f} (summed squared error per image) over {played}; picture: {output}")


if __name__ == "__main__":
    stage.run_main(main)
