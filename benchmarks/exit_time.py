"""How long a process that has imported what a raycells command imports (torch, Ray, Ray Train
and Data, Kornia, pandas, MLflow, scikit-learn) takes to end once its work is done: Python's
last garbage collections go over every object the libraries made, unless they are frozen first
(`gc.freeze`, which `raycells.cli.main` registers to run at exit).

    python benchmarks/exit_time.py [--runs 3]

Prints, for each way, the seconds from the last line of work to the process's end.
"""

import argparse
import statistics
import subprocess
import sys
import time

WORK = """
import gc, sys, time
import torch, ray, ray.train, ray.data, kornia, pandas, mlflow, sklearn.ensemble
objects = len(gc.get_objects())
{freeze}
print(objects, time.time(), flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for name, freeze in (("collected", ""), ("frozen", "gc.freeze()")):
        seconds, objects = [], 0
        for _ in range(args.runs):
            done = subprocess.run([sys.executable, "-c", WORK.format(freeze=freeze)],
                                  capture_output=True, text=True, check=True)
            ended = time.time()
            objects, finished = done.stdout.split()
            seconds.append(ended - float(finished))
        print(f"{name}: {statistics.median(seconds):.2f} s to end (runs: "
              f"{', '.join(f'{s:.2f}' for s in seconds)}), {int(objects):,} objects")


if __name__ == "__main__":
    main()
