"""Device-agnostic code: nothing stack-specific."""
import torch


def forward(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return (x.to(device) * 2).sum()
