"""Only torch.cuda calls and 'cuda' devices: a shim is enough on plug-in stacks."""
import torch


def run() -> float:
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.ones(4, device=dev)
    torch.cuda.empty_cache()
    return float(x.sum())
