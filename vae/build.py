"""The V chosen by vae.kind: the ConvVAE (vae/model.py) or the VAE/GAN (vae/vaegan.py).

Its own module because it imports both, and the VAE/GAN imports the ConvVAE's parts.
"""

import keras

from vae.model import ConvVAE
from vae.vaegan import VaeGan


def build_model(vae_config) -> keras.Model:
    """The model chosen by vae.kind, compiled with its optimizer(s) and built."""
    if vae_config.kind == "vaegan":
        model = VaeGan(vae_config)
    else:
        model = ConvVAE(vae_config.z_size, vae_config.kl_tolerance, seed=vae_config.seed, name="conv_vae")
        model.compile(optimizer=keras.optimizers.Adam(vae_config.learning_rate))
    model.build_all()
    return model
