"""Rough time and cost of the paper's 5-fold ResNeXt-50 run on the GPU types of cluster/*.yaml.

Not a measurement: no GPU was lent while this was written. It starts from NVIDIA's published
training throughput (DeepLearningExamples, PyTorch/Classification/ConvNets, mixed precision):
ResNeXt101-32x4d, 908 images/s on one A100 40GB and 535 on one V100 16GB at 224x224. Then:
- ResNeXt-50 32x4d needs 4.26 GFLOPs per 224x224 image against ResNeXt101-32x4d's 8.01;
- 400x400 images cost (400/224)^2 = 3.19 times the pixels of 224x224;
- other GPUs are scaled by memory bandwidth, the ratio that turns NVIDIA's A100 figure into its
  V100 figure (1,555 against 900 GB/s gives 0.58; measured 535/908 = 0.59), rather than by tensor
  FLOPs (0.40).
The work: 5 folds x 20 epochs x 15 classes x 10,000 oversampled images = 15 million training
images (validation and test prediction add about 1 %). Prices are on-demand list prices
(us-east-1, us-central1) at the time of writing: check the current ones.

    .venv/bin/python benchmarks/cluster_estimate.py   # prints the table in cluster/README.md
"""

from __future__ import annotations

PUBLISHED_A100_RESNEXT101 = 908.0  # images/s, 224x224, AMP, one A100 40GB
FLOPS_RATIO = 8.01 / 4.26  # ResNeXt101-32x4d over ResNeXt-50 32x4d
PIXELS = (400 / 224) ** 2
A100_BANDWIDTH = 1555.0  # GB/s
IMAGES = 5 * 20 * 15 * 10_000
FOLDS = 5

# GPU, memory bandwidth (GB/s), instance, GPUs per instance, instance $/h, head node $/h
OFFERS = [
    ("A10G 24GB", 600.0, "AWS g5.2xlarge", 1, 1.212, 0.384),
    ("A100 40GB", 1555.0, "AWS p4d.24xlarge", 8, 32.77, 0.384),
    ("L4 24GB", 300.0, "GCP g2-standard-8", 1, 0.854, 0.389),
    ("A100 40GB", 1555.0, "GCP a2-highgpu-1g", 1, 3.673, 0.389),
]


def main() -> None:
    a100 = PUBLISHED_A100_RESNEXT101 * FLOPS_RATIO / PIXELS
    print("| GPU | node type | images/s per GPU (est.) | GPU-hours | nodes | wall time | cost |")
    print("|---|---|---|---|---|---|---|")
    for gpu, bandwidth, instance, per_node, price, head in OFFERS:
        speed = a100 * bandwidth / A100_BANDWIDTH
        gpu_hours = IMAGES / speed / 3600
        # One GPU per fold: five folds at once, on five one-GPU nodes or one eight-GPU node.
        nodes = 1 if per_node >= FOLDS else FOLDS
        wall = gpu_hours / FOLDS
        cost = wall * (nodes * price + head)
        print(f"| {gpu} | {instance} | {speed:,.0f} | {gpu_hours:.1f} | {nodes} | "
              f"{wall:.1f} h | ${cost:,.0f} |")


if __name__ == "__main__":
    main()
