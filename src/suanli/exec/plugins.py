"""Loading executors: the built-in modules plus third-party plugins.

A plugin package declares an entry point in the group ``suanli.executors`` whose object is a
module (or callable) that calls :func:`suanli.exec.register_executor` when loaded, e.g. in
its pyproject.toml::

    [project.entry-points."suanli.executors"]
    k8s = "suanli_k8s.executor"
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

BUILTIN = ("suanli.exec.local", "suanli.exec.slurm", "suanli.exec.ray")
GROUP = "suanli.executors"


def load_executors() -> list[str]:
    """Import every built-in and plugin executor module; return the problems (one line each).

    A module that is not there (``suanli.exec.local`` before the control plane lands) or a
    plugin that fails to import is reported, never raised: ``suanli check`` must always run.
    """
    problems: list[str] = []
    for name in BUILTIN:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                problems.append(f"{name}: {exc}")
    for ep in entry_points(group=GROUP):
        try:
            obj = ep.load()
            if callable(obj):
                obj()
        except Exception as exc:
            problems.append(f"plugin {ep.name} ({ep.value}): {type(exc).__name__}: {exc}")
    return problems
