"""Stage 1, the images: which files are images, a dataset folder or CSV indexed into a manifest,
class schemes, the fold plan, extra training data, the decoded-image cache, and the Ray Data
pipeline (with its per-epoch sampling) that streams a fold's images to training."""
