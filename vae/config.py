"""Config section for V, the ConvVAE (or VAE/GAN)."""

import dataclasses

from common.settings import setting


@dataclasses.dataclass
class VaeConfig:
    kind: str = setting("vae", "'vae' (ConvVAE, as the paper) or 'vaegan' (Larsen et al. 2016)")
    z_size: int = setting(32, "latent size (CarRacing 32, Doom 64)", "dimensions", "paper, appendix A.1")
    kl_tolerance: float = setting(0.5, "KL floor per image = kl_tolerance * z_size", "nats per latent dimension", "authors' code")
    learning_rate: float = setting(1e-4, "Adam learning rate", "1", "authors' code")
    batch_size: int = setting(100, "frames per training batch", "frames", "authors' code")
    epochs: int = setting(1, "passes over the training frames (paper 1, authors' code 10)", "epochs", "paper, section 4.1; authors' code: 10", locked=False)
    validation_fraction: float = setting(0.05, "share of rollout files held out for the validation loss and check_vae", "1")
    shuffle_buffer: int = setting(10000, "frames in the tf.data shuffle buffer (memory: buffer x 12 KiB)", "frames", locked=False)
    checkpoint_every_minutes: float = setting(5.0, "time between training checkpoints", "minutes", locked=False)
    max_train_steps: int = setting(0, "stop after this many batches even mid-epoch (0: no cap)", "batches", locked=False)
    extract_batch_size: int = setting(1000, "frames per encoder call when extracting series and checking V", "frames", locked=False)
    seed: int = setting(0, "seed for initial weights, shuffling and the held-out split", "seed")
    gan_learning_rate: float = setting(1e-4, "VAE/GAN: Adam learning rate of decoder and discriminator", "1", "Larsen et al. 2016 use 3e-4 RMSProp")
    gan_feature_weight: float = setting(
        1e-2, "VAE/GAN: gamma, weight of the feature-wise reconstruction loss in the decoder's loss", "1", "Larsen et al. 2016, eq. 9"
    )
    gan_feature_layer: int = setting(3, "VAE/GAN: index of the discriminator conv layer whose features define the reconstruction loss", "layer")

    def training_finished(self, epochs_completed: int, steps: int) -> bool:
        """Training stops after `epochs` epochs or `max_train_steps` batches, whichever comes first
        (vae/train.py's loop; scripts/train_vae.py's "already finished", so raising either continues)."""
        return epochs_completed >= self.epochs or (self.max_train_steps > 0 and steps >= self.max_train_steps)
