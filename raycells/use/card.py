"""The model card for people: model.json (`raycells.use.export.model_card`) written as Markdown,
in the manner of Hugging Face's model cards (YAML front matter, then what the model is, how to
use it, what it was trained on, how well it did and what to keep in mind)."""

from __future__ import annotations

import json
from typing import Any

CARD_MARKDOWN = "model_card.md"


def _pm(value: list[float] | tuple[float, float] | None) -> str:
    return "–" if value is None else f"{value[0]:.3f} ± {value[1]:.3f}"


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _usage(fmt: str) -> list[str]:
    if fmt == "torchscript":
        return ["```python", "import torch", "", "graph = torch.jit.load(\"model.pt\")",
                "probabilities, per_network = graph(images)  # images as the input below", "```"]
    return ["```python", "import raycells", "",
            "model = raycells.load_model(\"path/to/this/folder\")",
            "table = model.predict([\"cell.jpg\"])  # path, predicted, probability, prob_<class>...",
            "```"]


def card_markdown(card: dict[str, Any]) -> str:
    """model.json's content `card` as a Markdown model card."""
    data, metrics = card["training_data"], card["metrics"]
    licences = sorted({source["licence"] for source in data["sources"]}) or ["unknown"]
    front = {"library_name": "raycells", "pipeline_tag": "image-classification",
             "tags": ["white-blood-cells", "hematology", "cytomorphology", card["architecture"]],
             "datasets": [source["name"] for source in data["sources"]],
             "license": "other", "license_details": "; ".join(licences)}
    lines = ["---", *(f"{key}: {json.dumps(value)}" for key, value in front.items()), "---", "",
             f"# {card['architecture']}: {len(card['classes'])} white-blood-cell classes", "",
             f"Exported by raycells {card['versions']['raycells']} from the run `{card['run']}` "
             f"on {card['exported']}: {card['combined']} (folds "
             f"{', '.join(map(str, card['folds']))}), as `{card['file']}` ({card['format']}).", "",
             "## How to use", "", *_usage(card["format"]), "",
             f"Input `{card['input']['name']}`: {card['input']['dtype']} "
             f"{'x'.join(map(str, card['input']['shape']))}, {card['input']['values']}. "
             "Outputs: " + ", ".join(f"`{name}` {'x'.join(map(str, shape))}"
                                     for name, shape in card["outputs"].items()) + ".", "",
             "Preprocessing, in order:", "", *(f"1. {step}" for step in card["preprocessing"]), "",
             "## Classes", "", "| output | code | name |", "|---|---|---|",
             *(f"| {n} | {_cell(c['code'])} | {_cell(c['name'])} |"
               for n, c in enumerate(card["classes"])), "",
             "## Training data", "",
             f"{data['images']:,} images (manifest sha1 `{data['manifest_sha1']}`), from "
             f"`{data['root']}`.", ""]
    for source in data["sources"]:
        lines += [f"- **{source['dataset']}**: licence {source['licence']}. Cite: {source['cite']}"]
    lines += ["", "## Evaluation", "", f"{metrics['what']}.", "",
              "| score | mean ± std |", "|---|---|",
              *(f"| {name.replace('_', ' ')} | {_pm(metrics[name])} |"
                for name in ("accuracy", "balanced_accuracy", "macro_f1")), "",
              "| class | precision | sensitivity | F1 | ROC AUC | test images |",
              "|---|---|---|---|---|---|",
              *(f"| {_cell(code)} | {_pm(row.get('precision'))} | {_pm(row.get('sensitivity'))} | "
                f"{_pm(row.get('f1'))} | {_pm(row.get('roc_auc'))} | {row['support']} |"
                for code, row in metrics["per_class"].items()), "",
              "## Limitations", "",
              "- Scores are from the run's own test folds: images like the training images (same "
              "lab, stain and scanner). Expect less on images from elsewhere; `raycells predict` "
              "marks images unlike the training images as unusual.",
              "- A research model, not a medical device."]
    lines += [f"- Data warning at training: {_cell(warning)}" for warning in data["warnings"]]
    check = card["check"]
    lines += ["", "## Checks", "",
              f"The exported file was compared with PyTorch on {check['images']} images of the "
              f"run: largest difference of a probability {check['max_abs_difference']:.2g} "
              f"(accepted up to {check['tolerance']:g}). Versions: "
              + ", ".join(f"{name} {version}" for name, version in card["versions"].items()) + ".",
              ""]
    return "\n".join(lines)
