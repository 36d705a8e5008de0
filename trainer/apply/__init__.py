"""Uses of a trained generator: sampling, inversion tasks and export."""
