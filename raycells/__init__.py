"""raycells: white-blood-cell image classifiers trained and evaluated the way hematology papers
report them, on one machine or a Ray cluster."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `raycells.load_model` loads torch only when asked for: settings and the CLI's help stay light.
    if name == "load_model":
        from .use.model import load_model

        return load_model
    raise AttributeError(f"module 'raycells' has no attribute {name!r}")
