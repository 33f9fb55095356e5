"""Images unlike the training images: the range of sizes and colour statistics the networks
trained on (from the manifest's facts), and which new images fall outside it.

A network only knows the pictures it saw. A cell photographed at another magnification (another
image size: the network sees it resized) or stained or lit differently (other colour means and
spreads) may be classified with confidence and still wrongly; such images are flagged, not
dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

COLOUR = ("mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b")
SIZE_SLACK = 1.25
"""Sizes within [smallest / 1.25, largest x 1.25] of the training images' pass."""
COLOUR_SLACK = 0.25
"""Colour statistics within the training images' 0.5-99.5 % range widened by a quarter of its
width (and at least 0.02) on each side pass."""


@dataclass(frozen=True)
class TrainingRange:
    """What the training images looked like: sizes and colour-statistic ranges."""

    width: tuple[int, int]
    height: tuple[int, int]
    colour: dict[str, tuple[float, float]]
    """Per colour statistic (`COLOUR`): the range outside which an image is flagged."""

    @classmethod
    def of(cls, frame: pd.DataFrame) -> TrainingRange:
        """The range of the images of `frame` (a manifest frame: width, height and `COLOUR`)."""
        colour = {}
        for column in COLOUR:
            low, high = np.quantile(frame[column].to_numpy(dtype=float), [0.005, 0.995])
            slack = max(COLOUR_SLACK * (high - low), 0.02)
            colour[column] = (round(float(low - slack), 4), round(float(high + slack), 4))
        return cls(width=(int(frame["width"].min()), int(frame["width"].max())),
                   height=(int(frame["height"].min()), int(frame["height"].max())), colour=colour)

    @classmethod
    def from_dict(cls, content: dict) -> TrainingRange:
        return cls(width=tuple(content["width"]), height=tuple(content["height"]),
                   colour={key: tuple(value) for key, value in content["colour"].items()})

    def to_dict(self) -> dict:
        return asdict(self)

    def unusual(self, frame: pd.DataFrame) -> list[str]:
        """Per image of `frame`: "" when it looks like the training images, else what lies outside
        their range (e.g. "size 1200x900 (training 360-366 x 360-363)")."""
        notes = []
        for row in frame.itertuples(index=False):
            found = []
            if not (self.width[0] / SIZE_SLACK <= row.width <= self.width[1] * SIZE_SLACK
                    and self.height[0] / SIZE_SLACK <= row.height <= self.height[1] * SIZE_SLACK):
                found.append(f"size {row.width}x{row.height} (training {_span(self.width)} x "
                             f"{_span(self.height)})")
            for column, (low, high) in self.colour.items():
                value = float(getattr(row, column))
                if not low <= value <= high:
                    found.append(f"{column} {value:.2f} (training {low:.2f}-{high:.2f})")
            notes.append("; ".join(found))
        return notes


def _span(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}-{pair[1]}"
