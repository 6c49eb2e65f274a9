"""Latency and cost of a child: measured latency, FLOPs and parameters."""

from rlnas.latency.flops import count_flops, count_params
from rlnas.latency.measure import measure_latency, torch_threads

__all__ = ["count_flops", "count_params", "measure_latency", "torch_threads"]
