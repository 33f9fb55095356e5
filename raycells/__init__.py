"""raycells: white-blood-cell image classifiers trained and evaluated the way hematology papers
report them, on one machine or a Ray cluster."""

__version__ = "0.1.0"
