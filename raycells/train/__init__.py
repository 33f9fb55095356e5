"""Stage 2, the networks: the model registry, augmentation, training phases, one fold's job and
its Ray Train `TorchTrainer`, the per-worker training loop, the checkpoint format, and batch
prediction with a trained network."""
