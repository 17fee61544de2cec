"""The probe contract: one module per vendor tool, each parsing its output into devices.

A probe never raises for a machine without the vendor's stack: an absent tool is
``not_present``; output it cannot read is ``unparseable``; a tool that fails is ``error``.
Parsing is separate from running the tool, so every parser is tested on recorded samples.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from suanli.catalog import Catalog, Chip

Status = Literal["ok", "not_present", "unparseable", "error"]


class Unparseable(ValueError):
    """The tool's output does not have the documented shape."""


class Device(BaseModel):
    """One accelerator as a vendor tool reports it."""

    model_config = ConfigDict(frozen=True)

    vendor: str
    index: int = Field(ge=0)
    name: str
    chip_id: str | None = None  # catalogue chip, when the name (and memory) identify one
    memory_mib: float | None = Field(default=None, ge=0)
    memory_used_mib: float | None = Field(default=None, ge=0)
    utilization_pct: float | None = Field(default=None, ge=0)
    driver_version: str | None = None
    stack_version: str | None = None  # CUDA, CANN, DTK, MUSA, MACA, ...
    bus_id: str | None = None
    note: str | None = None


class ProbeResult(BaseModel):
    """What one probe found on this machine."""

    probe: str
    vendor: str
    status: Status
    tool: str | None = None
    message: str = ""
    devices: list[Device] = Field(default_factory=list)


class Parsed(BaseModel):
    """A parser's raw reading, before catalogue matching."""

    devices: list[Device] = Field(default_factory=list)
    driver_version: str | None = None
    stack_version: str | None = None


Runner = Callable[[list[str], float], "tuple[int, str] | None"]


def run_tool(argv: list[str], timeout: float = 15.0) -> tuple[int, str] | None:
    """Run a vendor tool: ``None`` if it is not installed, else (exit code, stdout+stderr)."""
    exe = shutil.which(argv[0])
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, *argv[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            errors="replace",
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return 127, f"{type(exc).__name__}: {exc}"
    out = proc.stdout if proc.returncode == 0 else (proc.stdout + proc.stderr)
    return proc.returncode, out


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_float(text: str | None) -> float | None:
    """A number from a tool's cell ("81920", "35.0", "N/A", "-") or None."""
    if text is None:
        return None
    m = re.search(r"-?\d+(?:\.\d+)?", text)
    if not m:
        return None
    try:
        value = float(m.group(0))
    except ValueError:  # pragma: no cover - the regex only matches numbers
        return None
    return value if value >= 0 and value == value and value != float("inf") else None


def _norm(text: str) -> str:
    return re.sub(r"[\s\-_./()]+", "", text).casefold()


class Probe(ABC):
    """One vendor's discovery tool. Subclasses set the class attributes and ``parse``."""

    name: str  # probe name, e.g. "nvidia"
    vendor: str  # the catalogue's vendor field ("NVIDIA", "Huawei", ...)
    tools: tuple[str, ...]  # executables tried, in order
    # words a tool adds in front of the product name ("NVIDIA H800" -> "H800")
    name_prefixes: tuple[str, ...] = ()

    def command(self, tool: str) -> list[str]:
        """The argv that prints the device list for ``tool``."""
        return [tool]

    @abstractmethod
    def parse(self, text: str, tool: str | None = None) -> Parsed:
        """Read the tool's output; raise :class:`Unparseable` if it has the wrong shape."""

    # -- running -----------------------------------------------------------------------
    def probe(self, catalog: Catalog | None = None, runner: Runner = run_tool) -> ProbeResult:
        """Find this vendor's devices on this machine; never raises."""
        for tool in self.tools:
            try:
                out = runner(self.command(tool), 15.0)
            except Exception as exc:  # a runner must not take the agent down
                return self._result("error", tool, f"{type(exc).__name__}: {one_line(str(exc))}")
            if out is None:
                continue
            code, text = out
            if code != 0:
                return self._result("error", tool, f"exit code {code}: {one_line(text)}")
            return self.parse_result(text, catalog, tool)
        return self._result("not_present", None, f"{' / '.join(self.tools)} not found on PATH")

    def parse_result(
        self, text: str, catalog: Catalog | None = None, tool: str | None = None
    ) -> ProbeResult:
        """Parse recorded or live output into a result; never raises."""
        tool = tool or self.tools[0]
        try:
            parsed = self.parse(text, tool)
        except (Unparseable, ValueError, KeyError, IndexError, TypeError) as exc:
            return self._result("unparseable", tool, one_line(str(exc)) or "unexpected output")
        except RecursionError:
            return self._result("unparseable", tool, "output nested too deeply")
        devices = [self._finish(d, parsed, catalog) for d in parsed.devices]
        msg = f"{len(devices)} device(s)"
        return ProbeResult(
            probe=self.name, vendor=self.vendor, status="ok", tool=tool, message=msg,
            devices=devices,
        )

    def _result(self, status: Status, tool: str | None, message: str) -> ProbeResult:
        return ProbeResult(
            probe=self.name, vendor=self.vendor, status=status, tool=tool, message=message
        )

    def _finish(self, dev: Device, parsed: Parsed, catalog: Catalog | None) -> Device:
        update: dict[str, object] = {}
        if dev.driver_version is None and parsed.driver_version:
            update["driver_version"] = parsed.driver_version
        if dev.stack_version is None and parsed.stack_version:
            update["stack_version"] = parsed.stack_version
        if catalog is not None and dev.chip_id is None:
            chip_id, note = match_chip(catalog, self.vendor, dev.name, dev.memory_mib,
                                       self.name_prefixes)
            update["chip_id"] = chip_id
            if note:
                update["note"] = f"{dev.note}; {note}" if dev.note else note
        return dev.model_copy(update=update) if update else dev


def _chip_keys(chip: Chip) -> set[str]:
    return {k for k in (_norm(x) for x in (chip.id, chip.name, *chip.aliases)) if k}


def _mem_gap(chip: Chip, gib: float) -> float | None:
    """Relative gap between ``gib`` and the chip's memory per device (or per part)."""
    total = chip.memory_gb
    if not total:
        return None
    per_device = total / chip.devices_per_part
    return min(abs(gib - per_device) / per_device, abs(gib - total) / total)


def match_chip(
    catalog: Catalog,
    vendor: str,
    name: str,
    memory_mib: float | None = None,
    prefixes: Iterable[str] = (),
) -> tuple[str | None, str | None]:
    """The catalogue chip a tool's product name denotes: (chip id or None, note).

    Exact matches of the name (with the vendor's prefixes removed) against a chip's id, name
    or aliases win; otherwise the longest alias contained in the name. Several candidates are
    told apart by memory size. Only chips of ``vendor`` are considered.
    """
    chips = [c for c in catalog if c.vendor == vendor]
    if not chips or not name.strip():
        return None, None
    variants = {_norm(name)}
    low = name
    for p in prefixes:
        low = re.sub(rf"(?i)\b{re.escape(p)}\b", " ", low)
    variants.add(_norm(low))
    variants.discard("")
    exact = [c for c in chips if _chip_keys(c) & variants]
    hits = exact
    if not hits:
        best = 0
        for c in chips:
            for key in _chip_keys(c):
                if len(key) >= 3 and any(key in v for v in variants) and len(key) >= best:
                    if len(key) > best:
                        hits, best = [], len(key)
                    hits.append(c)
    if not hits:
        return None, f"no catalogue chip matches '{name}'"
    hits = list({c.id: c for c in hits}.values())
    if len(hits) > 1 and memory_mib:
        gib = memory_mib / 1024.0
        sized = [c for c in hits if _mem_gap(c, gib) is not None]
        if sized:
            hits = sorted(sized, key=lambda c: _mem_gap(c, gib) or 0.0)[:1]
    if len(hits) > 1:
        ids = ", ".join(sorted(c.id for c in hits))
        return None, f"'{name}' could be {ids}"
    chip = hits[0]
    gap = _mem_gap(chip, memory_mib / 1024.0) if memory_mib else None
    if memory_mib and gap is not None and gap > 0.25:
        # a wrong chip is worse than an unknown one: the scheduler would trust it
        return None, (
            f"name suggests {chip.id}, but {memory_mib / 1024.0:.0f} GiB differs from its "
            f"catalogued {chip.memory_gb:g} GB; name the chip explicitly"
        )
    return chip.id, None
