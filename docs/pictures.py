"""A picture of `raycells report --examples` (the README describes one): per class, one test cell
the network got right and one it got wrong, each beside its Grad-CAM map, as one JPEG. It shows
real cells: keep it out of the repository.

    .venv/bin/python docs/pictures.py RUN --fold 0 --classes 6 --out examples.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt

from raycells.report.examples import choose_examples
from raycells.runs.rundir import RunDir
from raycells.use.explain import Explainer
from raycells.use.networks import RunNetworks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("examples.jpg"))
    args = parser.parse_args()
    chosen = choose_examples(RunDir(args.run), [args.fold], 1)
    both = [code for code, rows in chosen.groupby("label", sort=True) if rows["mistake"].nunique() == 2]
    chosen = chosen[chosen["label"].isin(both[:args.classes])].sort_values(["label", "mistake"])
    explained = Explainer.of(RunNetworks.of(args.run, fold=args.fold)).explain(
        chosen["path"].tolist(), chosen["predicted"].tolist())
    rows = len(chosen) // 2
    figure, axes = plt.subplots(rows, 4, figsize=(8, 2.1 * rows))
    for index, (item, (_, row)) in enumerate(zip(explained, chosen.iterrows())):
        line, column = divmod(index, 2)
        said = (f"{row['label']} taken for {row['predicted']}" if row["mistake"]
                else f"{row['label']}, right")
        for offset, picture in enumerate((item.picture, item.overlay)):
            axis = axes[line, 2 * column + offset]
            axis.imshow(picture)
            axis.set_axis_off()
            if offset == 0:
                axis.set_title(f"{said} ({row['probability']:.2f})", fontsize=8, loc="left",
                               color="#a40000" if row["mistake"] else "black")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=80, pil_kwargs={"quality": 85})
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
