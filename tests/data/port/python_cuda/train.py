"""Sample training script using CUDA-specific PyTorch features (one per rule)."""
import os

import torch
import torch as th
import torch.distributed as dist
from torch.cuda import amp

os.environ["NCCL_IB_DISABLE"] = "1"
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "0,1")


def main() -> None:
    dist.init_process_group(backend="nccl")
    device = torch.device("cuda:0")
    model = torch.nn.Linear(8, 8).cuda()
    th.cuda.synchronize()
    torch.backends.cuda.matmul.allow_tf32 = True
    g = torch.cuda.CUDAGraph()
    x = torch.zeros(4, dtype=torch.float8_e4m3fn)
    gen = torch.cuda.default_generators[0]
    with amp.autocast():
        model(torch.ones(8, device=device))
    scripted = torch.jit.script(model)
    print(g, x, gen, scripted, "cuda is only a word in this sentence")
