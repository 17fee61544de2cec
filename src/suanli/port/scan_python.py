"""Python scanner (``ast``): imports of CUDA-specific packages, ``torch.cuda.*`` APIs, hard-coded
``"cuda"`` devices and ``.cuda()`` calls, the ``nccl`` backend, ``NCCL_*`` variables,
``torch.utils.cpp_extension`` builds, Triton kernels, CUDA graphs, TF32/FP8 switches.

Import aliases are resolved (``import torch as th; th.cuda.synchronize()``). A file that does not
parse (Python 2, broken encoding) is scanned line by line with regular expressions instead; its
findings are marked ``text_match``.
"""

from __future__ import annotations

import ast
import re
from bisect import bisect_left
from collections.abc import Callable, Iterator

from suanli.port.findings import Finding, Lines, evidence
from suanli.port.scan_text import requirement_name

# most specific first: the first prefix that matches decides the rule
API_RULES: tuple[tuple[str, str], ...] = (
    ("torch.cuda.CUDAGraph", "py.cuda-graph"),
    ("torch.cuda.graphs", "py.cuda-graph"),
    ("torch.cuda.graph", "py.cuda-graph"),
    ("torch.cuda.make_graphed_callables", "py.cuda-graph"),
    ("torch.cuda.default_generators", "py.cuda-default-generators"),
    ("torch.cuda.nvtx", "py.cuda-api-nvidia"),
    ("torch.cuda.jiterator", "py.cuda-api-nvidia"),
    ("torch.cuda.cudart", "py.cuda-api-nvidia"),
    ("torch.cuda.tunable", "py.cuda-api-nvidia"),
    ("torch.backends.cuda.matmul.allow_tf32", "py.tf32"),
    ("torch.backends.cudnn.allow_tf32", "py.tf32"),
    ("torch.set_float32_matmul_precision", "py.tf32"),
    ("torch.float8_", "py.fp8"),
    ("torch._scaled_mm", "py.fp8"),
    ("torch.utils.cpp_extension", "py.cpp-extension"),
    ("torch.jit.script", "py.jit-script"),
    ("torch.cuda", "py.cuda-api"),
    ("torch.backends.cudnn", "py.cuda-api"),
    ("torch.backends.cuda", "py.cuda-api"),
)
VENDOR_MODULES = {"torch_npu": "cann", "torch_mlu": "neuware", "torch_musa": "musa",
                  "torchada": "musa", "torch_gcu": "topsrider", "torch_br": "supa"}
TRITON_DECORATORS = ("triton.jit", "triton.autotune", "triton.heuristics")
CUDA_DEVICE = re.compile(r"cuda(:(\d*|\{\w*\}|%d|%s))?")
NCCL_ENV = re.compile(r"NCCL_[A-Z0-9_]+")

# cheap pre-filter: a file without any of these byte strings cannot produce a finding
BASE_TRIGGERS = (b"cuda", b"cudnn", b"nccl", b"NCCL", b"triton", b"cpp_extension", b"float8",
                 b"tf32", b"float32_matmul", b"_scaled_mm", b"jit", b"CUDA", b"hip",
                 *(m.encode() for m in VENDOR_MODULES))


def make_trigger(import_names: list[str]) -> re.Pattern[bytes]:
    words = sorted({*BASE_TRIGGERS, *(n.split(".")[0].encode() for n in import_names)})
    return re.compile(b"|".join(re.escape(w) for w in words))


_IMPORT_START = re.compile(rb"^[ \t]*(?:import|from)[ \t]", re.M)


def trigger_lines(data: bytes, trigger: re.Pattern[bytes]) -> list[int]:
    """Sorted line numbers holding a trigger word or an import statement."""
    starts = [0]
    starts += [m.end() for m in re.finditer(b"\n", data)]
    found = {bisect_left(starts, m.start() + 1) for m in trigger.finditer(data)}
    found |= {bisect_left(starts, m.start() + 1) for m in _IMPORT_START.finditer(data)}
    return sorted(found)


def walk_pruned(tree: ast.AST, lines: list[int] | None) -> Iterator[ast.AST]:
    """Like ``ast.walk``, but skips subtrees whose line span holds no line of ``lines``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if lines is not None:
            ln = getattr(node, "lineno", None)
            if ln is not None:
                end = getattr(node, "end_lineno", None) or ln
                decorators = getattr(node, "decorator_list", None)
                if decorators:  # a def's lineno is the 'def' line, after its decorators
                    ln = min(ln, *(d.lineno for d in decorators))
                i = bisect_left(lines, ln)
                if i == len(lines) or lines[i] > end:
                    continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


_RULE_CACHE: dict[str, str | None] = {}


def _api_rule(name: str) -> str | None:
    if not name.startswith("torch."):
        return None
    if name in _RULE_CACHE:
        return _RULE_CACHE[name]
    rule = _api_rule_uncached(name)
    if len(_RULE_CACHE) < 100_000:
        _RULE_CACHE[name] = rule
    return rule


def _api_rule_uncached(name: str) -> str | None:
    for prefix, rule in API_RULES:
        if name == prefix or name.startswith(prefix + ".") or (
            prefix.endswith("_") and name.startswith(prefix)
        ):
            return rule
    return None


class _Scan:
    def __init__(self, rel: str, text: str, imports: dict[str, str],
                 dist_lookup: Callable[[str], str | None] | None) -> None:
        self.rel = rel
        self.lines = Lines(text)
        self.imports = imports
        self.dist_lookup = dist_lookup
        self.seen: set[tuple[int, str]] = set()
        self.out: list[Finding] = []
        self.alias: dict[str, str] = {}

    def add(self, line: int, rule: str, ev: str | None = None) -> None:
        key = (line, rule)
        if key in self.seen:
            return
        self.seen.add(key)
        self.out.append(Finding(self.rel, line, rule, ev or self.lines.get(line)))

    def package(self, module: str) -> str | None:
        parts = module.split(".")
        for i in range(len(parts), 0, -1):
            pkg = self.imports.get(".".join(parts[:i]))
            if pkg is not None:
                return pkg
        return None

    def dotted(self, node: ast.AST) -> str | None:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(self.alias.get(node.id, node.id))
        return ".".join(reversed(parts))

    def _aliases(self, nodes: list[ast.AST]) -> None:
        for n in nodes:
            if isinstance(n, ast.Import):
                for a in n.names:
                    if a.asname:
                        self.alias[a.asname] = a.name
            elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
                for a in n.names:
                    self.alias[a.asname or a.name] = f"{n.module}.{a.name}"

    def run(self, tree: ast.AST, lines: list[int] | None = None) -> list[Finding]:
        nodes = list(walk_pruned(tree, lines))
        self._aliases(nodes)
        if lines is not None:
            # names bound to a CUDA API by an import (``from torch.cuda import amp``) are
            # triggers too: widen the walk to the lines that use them
            hot = [local for local, target in self.alias.items()
                   if _api_rule(target) or target.startswith("triton") or self.package(target)]
            if hot:
                word = re.compile(r"\b(?:" + "|".join(map(re.escape, hot)) + r")\b")
                extra = {i for i, ln in enumerate(self.lines.all(), 1) if word.search(ln)}
                if not extra <= set(lines):
                    nodes = list(walk_pruned(tree, sorted(extra | set(lines))))
        inner: set[int] = set()
        for n in nodes:  # pass 1: inner attribute nodes
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute):
                inner.add(id(n.value))
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
                inner.add(id(n.func))
        for n in nodes:  # pass 2: findings
            if isinstance(n, ast.Import):
                for a in n.names:
                    self._module(n.lineno, a.name)
            elif isinstance(n, ast.ImportFrom):
                if n.module and n.level == 0:
                    self._module(n.lineno, n.module)
                    for a in n.names:
                        full = f"{n.module}.{a.name}"
                        if self.package(full) and not self.package(n.module):
                            self.add(n.lineno, f"pkg.{self.package(full)}")
                        rule = _api_rule(full)
                        if rule and rule != "py.cuda-api":
                            self.add(n.lineno, rule)
            elif isinstance(n, ast.Call):
                self._call(n)
            elif isinstance(n, ast.Attribute):
                if id(n) not in inner:
                    self._attribute(n)
            elif isinstance(n, ast.Constant) and isinstance(n.value, str):
                self._string(n)
            elif isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef):
                for dec in n.decorator_list:
                    target = dec.func if isinstance(dec, ast.Call) else dec
                    name = self.dotted(target)
                    if name in TRITON_DECORATORS:
                        self.add(dec.lineno, "py.triton-kernel")
        return self.out

    def _module(self, line: int, module: str) -> None:
        vendor = VENDOR_MODULES.get(module.split(".")[0])
        if vendor is not None:
            self.add(line, f"vendor.{vendor}")
        pkg = self.package(module)
        if pkg is not None:
            self.add(line, f"pkg.{pkg}")
        rule = _api_rule(module)
        if rule is not None:
            self.add(line, rule)

    def _attribute(self, n: ast.Attribute) -> None:
        name = self.dotted(n)
        if name is None:
            return
        if name == "torch.version.hip":
            self.add(n.lineno, "vendor.rocm")
            return
        rule = _api_rule(name)
        if rule is not None:
            self.add(n.lineno, rule)

    def _call(self, n: ast.Call) -> None:
        func = n.func
        if isinstance(func, ast.Attribute):
            name = self.dotted(func)
            if func.attr == "cuda" and name != "torch.cuda":
                self.add(n.lineno, "py.cuda-device")  # tensor.cuda() / model.cuda()
            elif name is not None:
                rule = _api_rule(name)
                if rule is not None:
                    self.add(n.lineno, rule)
        elif isinstance(func, ast.Name):
            name = self.alias.get(func.id, func.id)
            rule = _api_rule(name)
            if rule is not None:
                self.add(n.lineno, rule)
        elif isinstance(func, ast.Call | ast.Subscript):
            pass  # walked separately

    def _string(self, n: ast.Constant) -> None:
        v = n.value
        if not isinstance(v, str) or len(v) > 40:
            return
        if CUDA_DEVICE.fullmatch(v):
            self.add(n.lineno, "py.cuda-device")
        elif v.casefold() == "nccl":
            self.add(n.lineno, "py.nccl-backend")
        elif NCCL_ENV.fullmatch(v):
            self.add(n.lineno, "env.nccl")
        elif v == "CUDA_VISIBLE_DEVICES":
            self.add(n.lineno, "env.cuda-visible-devices")
        elif self.dist_lookup is not None:
            dist = requirement_name(v)
            if dist:
                pkg = self.dist_lookup(dist)
                if pkg is not None:
                    self.add(n.lineno, f"pkg.{pkg}")


def scan_python_tree(tree: ast.AST, rel: str, text: str, imports: dict[str, str],
                     dist_lookup: Callable[[str], str | None] | None = None,
                     lines: list[int] | None = None) -> list[Finding]:
    """Findings in a parsed module. ``dist_lookup`` (for setup.py) maps requirement strings;
    ``lines`` (from :func:`trigger_lines`) lets the walk skip subtrees without a trigger."""
    return _Scan(rel, text, imports, dist_lookup).run(tree, lines)


# ----------------------------------------------------------------- text fallback
_TEXT_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\btorch\.cuda\.(CUDAGraph|graphs?\b|make_graphed_callables)"), "py.cuda-graph"),
    (re.compile(r"@\s*triton\.(jit|autotune|heuristics)\b"), "py.triton-kernel"),
    (re.compile(r"\bcpp_extension\b|\bCUDAExtension\b"), "py.cpp-extension"),
    (re.compile(r"\bfloat8_e[45]m|\b_scaled_mm\b"), "py.fp8"),
    (re.compile(r"\ballow_tf32\b|set_float32_matmul_precision"), "py.tf32"),
    (re.compile(r"\btorch\.(cuda|backends\.cudnn)\b"), "py.cuda-api"),
    (re.compile(r"""['"]cuda(:\d*)?['"]|\.cuda\("""), "py.cuda-device"),
    (re.compile(r"""['"]nccl['"]""", re.I), "py.nccl-backend"),
    (re.compile(r"\bNCCL_[A-Z0-9_]+"), "env.nccl"),
    (re.compile(r"\bCUDA_VISIBLE_DEVICES\b"), "env.cuda-visible-devices"),
)
_IMPORT_LINE = re.compile(r"^\s*(?:import|from)\s+([A-Za-z_][\w.]*)")


def scan_python_text(text: str, rel: str, imports: dict[str, str]) -> list[Finding]:
    out: list[Finding] = []
    for i, line in enumerate(text.splitlines(), 1):
        if "#" in line and line.lstrip().startswith("#"):
            continue
        rules: list[str] = [r for pat, r in _TEXT_RULES if pat.search(line)]
        m = _IMPORT_LINE.match(line)
        if m:
            parts = m.group(1).split(".")
            for k in range(len(parts), 0, -1):
                pkg = imports.get(".".join(parts[:k]))
                if pkg:
                    rules.append(f"pkg.{pkg}")
                    break
        for r in dict.fromkeys(rules):
            out.append(Finding(rel, i, r, evidence(line), text_match=True))
    return out
