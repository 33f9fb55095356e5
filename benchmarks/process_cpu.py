"""Where a command's CPU goes, process by process (Linux): runs the command and samples /proc
every 0.25 s, keeping each process's CPU seconds and its title (Ray names its actors
`ray::TrainController`, `ray::RayTrainWorker`, ...), then prints the CPU seconds and the number
of processes of each title, largest first. Processes that were running before the command are
counted from its start. The sampler itself takes about 1 % of one core.

    python benchmarks/process_cpu.py -- python benchmarks/fold_overhead.py --data ../shared/data/pbc --runs 2
    python benchmarks/process_cpu.py --top 25 -- make test

A process that lives less than 0.25 s may be missed, and a process's last 0.25 s is not counted.
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def sample(seen: dict, base: dict, first: bool) -> None:
    """One look at every process: its CPU seconds (less what it had at the start) and title."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as file:
                stat = file.read()
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                title = file.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        key = (pid, fields[19])  # a pid and its start time: one process
        if first:
            base[key] = cpu
        entry = seen.setdefault(key, {"cpu": 0.0, "title": ""})
        entry["cpu"] = max(entry["cpu"], cpu - base.get(key, 0.0))
        if title and "IDLE" not in title:  # an idle Ray worker is named by what it becomes
            entry["title"] = title


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=20, help="titles to print")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    seen: dict = {}
    base: dict = {}
    sample(seen, base, first=True)
    process = subprocess.Popen(command)
    while process.poll() is None:
        time.sleep(0.25)
        sample(seen, base, first=False)
    totals = collections.defaultdict(lambda: [0.0, 0])
    for entry in seen.values():
        title = re.sub(r"\d+", "N", " ".join(entry["title"].split()) or "?")[:90]
        totals[title][0] += entry["cpu"]
        totals[title][1] += 1
    print(f"{'CPU s':>8} {'procs':>6}  title", file=sys.stderr)
    for title, (cpu, count) in sorted(totals.items(), key=lambda item: -item[1][0])[:args.top]:
        print(f"{cpu:8.1f} {count:6d}  {title}", file=sys.stderr)
    print(f"{sum(cpu for cpu, _ in totals.values()):8.1f}         all processes", file=sys.stderr)
    sys.exit(process.returncode)


if __name__ == "__main__":
    main()
