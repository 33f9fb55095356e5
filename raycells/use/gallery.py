"""One self-contained HTML page of cell pictures and their class activation maps: every picture
embedded (base64 PNG), so the page can be mailed or archived as one file."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..files import atomic_path
from .explain import png_bytes

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.note { color: #555; max-width: 60em; }
.row { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 0; width: 272px; }
figure img { width: 132px; height: 132px; image-rendering: auto; }
figcaption { font-size: 0.8em; line-height: 1.35; word-break: break-all; }
.wrong { color: #a40000; }
"""


@dataclass
class Item:
    """One picture beside its map, with caption lines (the first may be marked wrong)."""

    picture: Image.Image
    overlay: Image.Image
    lines: list[str]
    wrong: bool = False


@dataclass
class Section:
    title: str
    rows: list[tuple[str, list[Item]]]
    """Rows of pictures, each under its heading ("" for none)."""
    note: str = ""


def write_gallery(path: str | Path, title: str, sections: list[Section], note: str = "") -> Path:
    """Write the page to `path` (whole or not at all)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    if note:
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.note:
            parts.append(f"<p class='note'>{html.escape(section.note)}</p>")
        for heading, items in section.rows:
            if heading:
                parts.append(f"<h3>{html.escape(heading)}</h3>")
            if items:
                parts.append("<div class='row'>" + "".join(_figure(item) for item in items) + "</div>")
            elif heading:
                parts.append("<p class='note'>none</p>")
    parts.append("</body></html>")
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(parts), encoding="utf-8")
    return Path(path)


def _figure(item: Item) -> str:
    pictures = "".join(f"<img alt='{alt}' src='data:image/png;base64,"
                       f"{base64.b64encode(png_bytes(image)).decode()}'>"
                       for alt, image in (("cell", item.picture), ("map", item.overlay)))
    lines = [html.escape(line) for line in item.lines]
    if item.wrong and lines:
        lines[0] = f"<span class='wrong'>{lines[0]}</span>"
    return f"<figure>{pictures}<figcaption>{'<br>'.join(lines)}</figcaption></figure>"
