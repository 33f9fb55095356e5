"""Stage 3, the commands' work: the run directory and its set-up, cross-validation, the Ray Tune
search, transfer to another dataset, and evaluation of trained networks on new images. Each
writes a run directory; none prints."""
