"""What the scheduler hands to the performance model: a compact workload description.

This is the contract between ``sched``/``sim`` and ``perf``. Work is counted in
``Workload.unit``: tokens for training and inference, FLOP for HPL-like, bytes for
STREAM-like HPC kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from suanli.catalog.schema import Precision

WorkloadKind = Literal["train", "infer", "hpc"]


@dataclass(frozen=True, slots=True)
class Workload:
    kind: WorkloadKind
    model: str | None = None  # preset name (train/infer), e.g. "llama2-7b"
    precision: Precision = Precision.BF16
    seq_len: int = 2048
    batch: int = 256  # train: global batch in sequences; infer: concurrent requests
    hpc_kernel: Literal["hpl", "stream"] = "hpl"

    @property
    def unit(self) -> str:
        if self.kind == "hpc":
            return "flop" if self.hpc_kernel == "hpl" else "byte"
        return "token"
