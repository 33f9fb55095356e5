"""What Python's garbage collector costs a process that imports what a raycells command imports
(torch, Ray Train and Data, Kornia, pandas, MLflow, scikit-learn): the CPU seconds of the imports
and the seconds from the process's last line to its end, with Python's collector as it comes,
and as `raycells.collector.collect_rarely` sets it (passes every 100,000 new objects, the
objects frozen at exit), which the CLI and each training worker call.

    python benchmarks/process_gc.py [--runs 3]

Prints one line per way: median import CPU seconds, median seconds to end, objects.
"""

import argparse
import statistics
import subprocess
import sys
import time

WORK = """
import gc, time
{setup}
started = time.process_time()
import torch, ray, ray.train, ray.train.torch, ray.data, kornia, pandas, mlflow, sklearn.ensemble
print(time.process_time() - started, len(gc.get_objects()), time.time(), flush=True)
"""

WAYS = {"Python's defaults": "",
        "collect_rarely": "from raycells.collector import collect_rarely; collect_rarely()"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for name, setup in WAYS.items():
        imports, ends, objects = [], [], 0
        for _ in range(args.runs):
            done = subprocess.run([sys.executable, "-c", WORK.format(setup=setup)],
                                  capture_output=True, text=True, check=True)
            ended = time.time()
            cpu, objects, finished = done.stdout.split()
            imports.append(float(cpu))
            ends.append(ended - float(finished))
        print(f"{name}: imports {statistics.median(imports):.2f} CPU-s "
              f"({', '.join(f'{s:.2f}' for s in imports)}), end {statistics.median(ends):.2f} s "
              f"({', '.join(f'{s:.2f}' for s in ends)}), {int(objects):,} objects")


if __name__ == "__main__":
    main()
