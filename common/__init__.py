"""Utilities every layer uses: atomic files, errors, config fields, checkpoints, TensorBoard
scalars and videos. It imports nothing from env/, vae/, rnn/, controller/ or scripts/, so
any of them may import it."""
