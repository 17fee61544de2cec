"""suanli (算力): catalogue, meter, estimate, plan and schedule heterogeneous AI compute."""

__version__ = "0.1.0"
