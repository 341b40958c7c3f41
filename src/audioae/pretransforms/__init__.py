"""Pretransforms: fixed (usually frozen) transforms applied before the encoder and after the
decoder, such as a wavelet or PQMF filter bank or another, already trained autoencoder."""
