"""The web dashboard served by ``suanli serve`` / ``suanli up`` under ``/ui``."""

from suanli.service.dashboard.routes import mount

__all__ = ["mount"]
