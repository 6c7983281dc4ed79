"""CycleGAN training: unpaired data, discriminators, losses, the loop, checkpoints, evaluation."""
