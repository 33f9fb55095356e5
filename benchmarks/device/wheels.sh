#!/usr/bin/env bash
# The wheels the GPU machine lacks, for the GPU kit (benchmarks/device/run.sh): Python 3.12,
# manylinux x86-64, at the versions constraints.txt pins, into benchmarks/device/wheels/
# (git-ignored; the device tool carries it). Ray's wheel is trimmed of its Java jar and the
# dashboard's web files (~33 MiB that Ray Data and Ray Train never load). Run on a machine with
# access to PyPI:
#
#   bash benchmarks/device/wheels.sh        # prints each wheel and the total (at most 60 MiB)
#
# The GPU machine already has torch, torchvision, numpy, pandas, pyarrow, scikit-learn, scipy,
# matplotlib, typer, rich, safetensors, pyyaml, msgpack, protobuf, click, filelock, requests,
# attrs and aiohttp (benchmarks/README.md names the machine); MLflow is left out: raycells runs
# without it (the kit passes --no-tracking).
set -euo pipefail
cd "$(dirname "$0")"
PACKAGES=(ray kornia kornia_rs jsonschema jsonschema-specifications referencing rpds-py
          pydantic pydantic_core annotated-types typing-inspection tensorboardX)
LIMIT_MIB=60
PYTHON=${PYTHON:-python3}

pinned() {  # the version constraints.txt pins for a package (names compared as PyPI does)
  local want
  want=$(echo "$1" | tr 'A-Z_.' 'a-z--')
  while IFS='=' read -r name _ version; do
    if [ "$(echo "$name" | tr 'A-Z_.' 'a-z--')" = "$want" ]; then echo "$version"; return; fi
  done < ../../constraints.txt
  echo "constraints.txt pins no version of $1" >&2
  exit 2
}

REQUIREMENTS=()
for package in "${PACKAGES[@]}"; do
  REQUIREMENTS+=("$package==$(pinned "$package")")
done
rm -rf wheels.partial && mkdir wheels.partial
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  --dest wheels.partial "${REQUIREMENTS[@]}" 2> >(grep -v "^WARNING: Location" >&2)
"$PYTHON" trim_wheel.py wheels.partial/ray-*.whl ray/jars/ ray/dashboard/client/build/
rm -rf wheels && mv wheels.partial wheels
ls -l wheels | awk 'NR > 1 {printf "%8.2f MiB  %s\n", $5 / 1048576, $9}'
total=$(du -cb wheels/*.whl | tail -n 1 | cut -f1)
awk -v t="$total" -v limit="$LIMIT_MIB" 'BEGIN {
  printf "%8.2f MiB  in all (limit %d MiB)\n", t / 1048576, limit
  exit (t > limit * 1048576) }' || { echo "the wheels are over $LIMIT_MIB MiB" >&2; exit 1; }
