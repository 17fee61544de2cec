"""Walk a project, run the scanners, and turn findings into one verdict per target stack.

Verdict of a stack = the worst outcome over its findings, in the order
``unchanged < shim < unknown < port < blocked``: a project with one item that needs porting
"needs porting" (the unknown items are listed too); one whose items only need the documented
shim "needs a shim"; anything undocumented makes it "unknown", never "works".
"""

from __future__ import annotations

import ast
import gc
import os
import stat
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from suanli.catalog.stacks import Stack, StackTable, load_stacks
from suanli.errors import SuanliError
from suanli.port.findings import FileProblem, Finding
from suanli.port.rules import Outcome, Resolved, RuleBook, load_rules
from suanli.port.scan_python import (
    make_trigger,
    scan_python_text,
    scan_python_tree,
    trigger_lines,
)
from suanli.port.scan_text import (
    scan_cmake,
    scan_conda,
    scan_cpp,
    scan_pyproject,
    scan_requirements,
    scan_setup_cfg,
    scan_shell,
    scan_vendor_source,
)

MAX_BYTES = 5_000_000
RANK: dict[Outcome, int] = {"unchanged": 0, "shim": 1, "unknown": 2, "port": 3, "blocked": 4}
LABEL: dict[Outcome, str] = {
    "unchanged": "runs unchanged",
    "shim": "needs a shim",
    "unknown": "unknown",
    "port": "needs porting",
    "blocked": "blocked",
}
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", "node_modules", ".tox", ".nox",
                       ".mypy_cache", ".pytest_cache", ".ruff_cache", ".venv", "venv",
                       ".eggs"})
CPP_EXT = frozenset({".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".hxx", ".inl", ".ipp"})
CUDA_EXT = frozenset({".cu", ".cuh"})
VENDOR_EXT = {".mlu": "vendor:neuware", ".mu": "vendor:musa"}
SHELL_EXT = frozenset({".sh", ".bash", ".zsh", ".slurm", ".sbatch", ".pbs"})


def classify(name: str) -> str | None:
    """Scanner kind for a file name, or None (not analysed)."""
    low = name.casefold()
    ext = os.path.splitext(low)[1]
    if ext in (".py", ".pyw"):
        return "python"
    if ext in CUDA_EXT:
        return "cuda"
    if ext in VENDOR_EXT:
        return VENDOR_EXT[ext]
    if ext in CPP_EXT:
        return "cpp"
    if low == "cmakelists.txt" or ext == ".cmake":
        return "cmake"
    if low.startswith("requirements") and ext in (".txt", ".in"):
        return "requirements"
    if low == "pyproject.toml":
        return "pyproject"
    if low == "setup.cfg":
        return "setupcfg"
    if ext in (".yml", ".yaml") and (low.startswith("environment") or low.startswith("conda")):
        return "conda"
    if ext in SHELL_EXT or low == "dockerfile" or low.startswith("dockerfile."):
        return "shell"
    return None


@dataclass(frozen=True, slots=True)
class Item:
    """One finding as seen from one stack."""

    finding: Finding
    outcome: Outcome
    shim: str | None
    note: str | None
    source: str | None
    confidence: str | None

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {**self.finding.as_dict(), "outcome": self.outcome}
        for k in ("shim", "note", "source", "confidence"):
            v = getattr(self, k)
            if v:
                d[k] = v
        return d


@dataclass
class StackVerdict:
    stack: str
    name: str
    verdict: Outcome
    items: list[Item] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LABEL[self.verdict]

    @property
    def shims(self) -> list[str]:
        return list(dict.fromkeys(i.shim for i in self.items if i.outcome == "shim" and i.shim))

    def by_outcome(self, outcome: Outcome) -> list[Item]:
        return [i for i in self.items if i.outcome == outcome]

    @property
    def vendor_files(self) -> list[str]:
        """Files with existing code for this stack (informational)."""
        rule = f"vendor.{self.stack}"
        return sorted({i.finding.file for i in self.items if i.finding.rule == rule})

    def reasons(self) -> list[str]:
        """Distinct notes of the items that decide the verdict."""
        return list(dict.fromkeys(
            f"{i.finding.rule}: {i.note}" for i in self.items
            if i.outcome == self.verdict and i.note))

    def as_dict(self) -> dict[str, object]:
        counts = Counter(i.outcome for i in self.items)
        return {
            "stack": self.stack, "name": self.name, "verdict": self.verdict,
            "label": self.label, "shims": self.shims,
            "counts": {k: counts.get(k, 0) for k in RANK},
            "reasons": self.reasons(),
            "vendor_files": len(self.vendor_files),
            "items": [i.as_dict() for i in self.items
                      if i.outcome != "unchanged" and not i.finding.rule.startswith("vendor.")],
        }


@dataclass
class Report:
    root: str
    files_scanned: int
    files_by_kind: dict[str, int]
    findings: list[Finding]
    problems: list[FileProblem]
    verdicts: list[StackVerdict]
    rule_titles: dict[str, str]
    seconds: float
    lines: int

    def allowed_stacks(self) -> list[str]:
        return allowed_stacks(self)

    def as_dict(self) -> dict[str, object]:
        return {
            "root": self.root,
            "files_scanned": self.files_scanned,
            "files_by_kind": self.files_by_kind,
            "lines": self.lines,
            "seconds": round(self.seconds, 3),
            "verdicts": [v.as_dict() for v in self.verdicts],
            "allowed_stacks": self.allowed_stacks(),
            "findings": [f.as_dict() for f in self.findings],
            "problems": [p.as_dict() for p in self.problems],
            "rules": self.rule_titles,
        }


def allowed_stacks(report: Report | Iterable[StackVerdict]) -> list[str]:
    """Stacks where the code runs unchanged or with a documented shim (for the scheduler)."""
    verdicts = report.verdicts if isinstance(report, Report) else report
    return [v.stack for v in verdicts if v.verdict in ("unchanged", "shim")]


# ----------------------------------------------------------------------------- walking
def _iter_files(root: Path, problems: list[FileProblem]) -> Iterable[tuple[Path, str]]:
    """(path, relative name) of regular files under root; symlinked dirs are not followed."""
    if root.is_file():
        yield root, root.name
        return

    def onerror(exc: OSError) -> None:
        rel = os.path.relpath(exc.filename, root) if exc.filename else "?"
        problems.append(FileProblem(rel, f"unreadable directory: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        keep = []
        for d in sorted(dirnames):
            if d in SKIP_DIRS:
                continue
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                problems.append(FileProblem(os.path.relpath(full, root).replace(os.sep, "/"),
                                            "symlinked directory not followed"))
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            full = os.path.join(dirpath, f)
            yield Path(full), os.path.relpath(full, root).replace(os.sep, "/")


def _read(path: Path, rel: str, max_bytes: int,
          problems: list[FileProblem]) -> bytes | None:
    try:
        st = os.stat(path)  # follows symlinks: loops and dangling links fail here
    except OSError as exc:
        kind = "symlink loop or dangling symlink" if os.path.islink(path) else "cannot stat"
        problems.append(FileProblem(rel, f"{kind}: {exc.strerror or exc}"))
        return None
    if not stat.S_ISREG(st.st_mode):
        problems.append(FileProblem(rel, "not a regular file, skipped"))
        return None
    if st.st_size > max_bytes:
        problems.append(FileProblem(
            rel, f"too large ({st.st_size / 1e6:.1f} MB > {max_bytes / 1e6:g} MB), skipped"))
        return None
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        problems.append(FileProblem(rel, f"unreadable: {exc.strerror or exc}"))
        return None
    if b"\0" in data[:8192]:
        problems.append(FileProblem(rel, "binary content (NUL bytes), skipped"))
        return None
    return data


def _decode(data: bytes, rel: str, problems: list[FileProblem]) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(FileProblem(rel, f"not UTF-8 (byte {exc.start}); decoded with "
                                         "replacement characters"))
        return data.decode("utf-8", errors="replace")


class _Scanner:
    def __init__(self, book: RuleBook) -> None:
        self.book = book
        self.imports = book.import_index()
        self.trigger = make_trigger(list(self.imports))
        self._dist_cache: dict[str, str | None] = {}

    def lookup(self, dist: str) -> str | None:
        if dist not in self._dist_cache:
            self._dist_cache[dist] = self.book.package_for_dist(dist)
        return self._dist_cache[dist]

    def python(self, data: bytes, rel: str, problems: list[FileProblem]) -> list[Finding]:
        is_setup = rel.rsplit("/", 1)[-1] == "setup.py"
        if not is_setup and not self.trigger.search(data):
            return []
        try:
            tree = ast.parse(data, filename=rel)
        except SyntaxError as exc:
            where = f" line {exc.lineno}" if exc.lineno else ""
            problems.append(FileProblem(rel, f"Python syntax error{where} ({exc.msg}; Python 2 "
                                             "code?): scanned as text"))
        except (ValueError, RecursionError, MemoryError) as exc:
            problems.append(FileProblem(rel, f"cannot parse ({type(exc).__name__}): scanned "
                                             "as text"))
        else:
            text = data.decode("utf-8", errors="replace")
            lines = None if is_setup else trigger_lines(data, self.trigger)
            try:
                return scan_python_tree(tree, rel, text, self.imports,
                                        self.lookup if is_setup else None, lines)
            except RecursionError:
                problems.append(FileProblem(rel, "syntax tree too deep: scanned as text"))
        return scan_python_text(data.decode("utf-8", errors="replace"), rel, self.imports)

    def scan(self, kind: str, data: bytes, rel: str,
             problems: list[FileProblem]) -> list[Finding]:
        if kind == "python":
            return self.python(data, rel, problems)
        text = _decode(data, rel, problems)
        if kind in ("cuda", "cpp"):
            return scan_cpp(text, rel, cuda_file=kind == "cuda")
        if kind.startswith("vendor:"):
            return scan_vendor_source(text, rel, kind.split(":", 1)[1])
        if kind == "cmake":
            return scan_cmake(text, rel)
        if kind == "requirements":
            return scan_requirements(text, rel, self.lookup)
        if kind == "setupcfg":
            return scan_setup_cfg(text, rel, self.lookup)
        if kind == "shell":
            return scan_shell(text, rel, self.lookup)
        if kind in ("pyproject", "conda"):
            fn = scan_pyproject if kind == "pyproject" else scan_conda
            found, problem = fn(text, rel, self.lookup)
            if problem is not None:
                problems.append(problem)
            return found
        return []


def scan_project(path: str | Path, book: RuleBook, *, max_bytes: int = MAX_BYTES
                 ) -> tuple[list[Finding], list[FileProblem], Counter[str], int]:
    """All findings under ``path`` (a directory or one file). Unreadable root: SuanliError."""
    root = Path(path)
    if not root.exists() and not root.is_symlink():
        raise SuanliError("no such file or directory", file=root)
    if root.is_dir():
        try:
            with os.scandir(root):
                pass
        except OSError as exc:
            raise SuanliError(f"cannot read directory: {exc.strerror or exc}", file=root) from None
    elif not root.is_file():
        raise SuanliError("not a file or directory (dangling symlink?)", file=root)
    elif not os.access(root, os.R_OK):
        raise SuanliError("cannot read file", file=root)
    scanner = _Scanner(book)
    findings: list[Finding] = []
    problems: list[FileProblem] = []
    kinds: Counter[str] = Counter()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # syntax trees are acyclic garbage: cyclic GC passes only cost time here
    try:
        _scan_all(root, scanner, max_bytes, findings, problems, kinds)
    finally:
        if gc_was_enabled:
            gc.enable()
    lines = kinds.pop("_lines", 0)
    if root.is_file() and not kinds:
        raise SuanliError("not a file type port-check reads (.py, .cu, .cpp, requirements*.txt, "
                          "pyproject.toml, setup.cfg, environment.yml, .sh, Dockerfile)",
                          file=root)
    findings.sort(key=lambda f: (f.file, f.line, f.rule))
    return findings, problems, kinds, lines


def _scan_all(root: Path, scanner: _Scanner, max_bytes: int, findings: list[Finding],
              problems: list[FileProblem], kinds: Counter[str]) -> None:
    for full, rel in _iter_files(root, problems):
        kind = classify(full.name)
        if kind is None:
            continue
        data = _read(full, rel, max_bytes, problems)
        if data is None:
            continue
        kinds[kind] += 1
        kinds["_lines"] += data.count(b"\n")
        try:
            findings += scanner.scan(kind, data, rel, problems)
        except Exception as exc:  # a scanner bug must not stop the analysis of other files
            problems.append(FileProblem(rel, f"scanner error ({type(exc).__name__}: "
                                             f"{' '.join(str(exc).split())[:100]})"))


# ----------------------------------------------------------------------------- verdicts
def _precision_gaps(stacks: StackTable, precision: str) -> dict[str, list[str]]:
    """Per stack: chip ids when every catalogued chip of the stack lacks ``precision``."""
    from suanli.catalog import load_catalog

    by_stack: dict[str, list[tuple[str, str]]] = {}
    for chip in load_catalog():
        sid = stacks.stack_of(chip)
        if sid is not None:
            by_stack.setdefault(sid, []).append((chip.id, chip.peak[precision].status))  # type: ignore[index]
    return {sid: [c for c, _ in chips] for sid, chips in by_stack.items()
            if chips and all(s == "unsupported" for _, s in chips)}


def verdicts_for(findings: Sequence[Finding], book: RuleBook, stacks: Sequence[Stack],
                 table: StackTable) -> list[StackVerdict]:
    gaps: dict[str, dict[str, list[str]]] = {}
    out: list[StackVerdict] = []
    for st in stacks:
        cache: dict[str, Resolved] = {}
        items: list[Item] = []
        for f in findings:
            r = cache.get(f.rule)
            if r is None:
                r = book.resolve(f.rule, st.id)
                spec = book.rules.get(f.rule)
                if spec is not None and spec.catalog_precision and r.outcome != "unchanged":
                    p = spec.catalog_precision
                    if p not in gaps:
                        gaps[p] = _precision_gaps(table, p)
                    chips = gaps[p].get(st.id)
                    if chips:
                        r = Resolved(spec.catalog_outcome, None,
                                     f"no catalogued {st.name} chip has {p.upper()}",
                                     "suanli catalogue: peak." + p + " unsupported on "
                                     + ", ".join(chips), "high")
                cache[f.rule] = r
            items.append(Item(f, r.outcome, r.shim, r.note, r.source, r.confidence))
        verdict: Outcome = max((i.outcome for i in items), key=RANK.__getitem__,
                               default="unchanged")
        out.append(StackVerdict(st.id, st.name, verdict, items))
    return out


def analyze(path: str | Path, *, targets: Sequence[str] | None = None,
            rules: Iterable[str | Path] | None = None,
            stack_files: Iterable[str | Path] | None = None,
            max_bytes: int = MAX_BYTES) -> Report:
    """Scan ``path`` and give a verdict for each target stack (default: every catalogued one)."""
    t0 = time.perf_counter()
    table = load_stacks(stack_files)
    book = load_rules(rules, table.ids)
    chosen = [table.get(t) for t in targets] if targets else list(table)
    chosen = list({s.id: s for s in chosen}.values())
    findings, problems, kinds, lines = scan_project(path, book, max_bytes=max_bytes)
    verdicts = verdicts_for(findings, book, chosen, table)
    titles = {r: book.title(r) for r in sorted({f.rule for f in findings})}
    return Report(str(path), sum(kinds.values()), dict(sorted(kinds.items())), findings,
                  problems, verdicts, titles, time.perf_counter() - t0, lines)
