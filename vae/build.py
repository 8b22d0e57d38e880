"""The V chosen by vae.kind: the ConvVAE (vae/model.py) or the VAE/GAN (vae/vaegan.py).

Its own module because it imports both, and the VAE/GAN imports the ConvVAE's parts.
Training builds V here (build_model), and so does loading its weights (vae/store.py).
"""

import keras

from vae.model import ConvVAE, VaeBase
from vae.vaegan import VaeGan


def construct(vae_config) -> VaeBase:
    """The model vae.kind names, its parts' weights freshly initialised, no optimizer state:
    what build_model trains and what vae/store.py loads saved weights into."""
    if vae_config.kind == "vaegan":
        return VaeGan(vae_config)
    return ConvVAE(vae_config.z_size, vae_config.kl_tolerance, seed=vae_config.seed, name="conv_vae")


def build_model(vae_config) -> keras.Model:
    """The model chosen by vae.kind, compiled with its optimizer(s) and built."""
    model = construct(vae_config)
    if isinstance(model, ConvVAE):  # the VAE/GAN makes its three optimizers itself
        model.compile(optimizer=keras.optimizers.Adam(vae_config.learning_rate))
    model.build_all()
    return model
