"""Line scanners for C++/CUDA sources, CMake files, requirement files (requirements*.txt,
pyproject.toml, setup.cfg, environment.yml) and shell launch scripts / Dockerfiles."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from suanli.port.findings import FileProblem, Finding, evidence

DistLookup = Callable[[str], str | None]

_REQ = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(?:[<>=!~;@(,]|$)")


def requirement_name(spec: str) -> str | None:
    """Distribution name of a PEP 508 requirement string (``flash-attn>=2; ...``), else None."""
    if not spec or len(spec) > 200 or spec.startswith(("-", "#", "/", ".")):
        return None
    m = _REQ.match(spec)
    return m.group(1) if m else None


# -------------------------------------------------------------------------- C++ / CUDA
_INCLUDE = re.compile(r"^\s*#\s*include\s*[<\"]([^>\"]+)[>\"]")
_RUNTIME_HEADERS = re.compile(
    r"^(cuda(_runtime(_api)?|_fp16|_bf16|_fp8|_pipeline|_awbarrier)?\.h(pp)?|cuda\.h|"
    r"device_launch_parameters\.h|cooperative_groups(\.h|/.*)|mma\.h|"
    r"c10/cuda/.*|ATen/cuda/.*|crt/.*|nvrtc\.h|vector_types\.h)$"
)
_LIBRARY_HEADERS = re.compile(
    r"^(cublas\w*\.h|cublasLt\.h|cudnn\w*\.h|nccl\.h|cusparse\w*\.h|cufft\w*\.h|curand\w*\.h|"
    r"cusolver\w*\.h|nvToolsExt\w*\.h|nvtx3/.*|cutlass/.*|cute/.*|cub/.*|thrust/.*)$"
)
_VENDOR_HEADERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^hip/|^hipblas|^miopen/|^rccl"), "rocm"),
    (re.compile(r"^musa|^mudnn|^mublas|^mccl|^torch_musa/"), "musa"),
    (re.compile(r"^acl/|^aclnn|^torch_npu/|^hccl/"), "cann"),
    (re.compile(r"^cnnl\.h|^cnrt\.h|^cncl\.h|^mlu_op\.h|^bang|^torch_mlu/|^framework/core/"),
     "neuware"),
)
_PTX = re.compile(r"\basm\s*(?:volatile\s*|__volatile__\s*)?\(\s*\"\s*[a-z]+\.[a-z0-9.]")
_CMAKE_CUDA = re.compile(
    r"enable_language\s*\(\s*CUDA|project\s*\([^)]*\bCUDA\b|find_package\s*\(\s*(CUDA|CUDAToolkit)"
    r"\b|\bcuda_add_(library|executable)\b|CMAKE_CUDA_", re.I
)


def scan_cpp(text: str, rel: str, *, cuda_file: bool) -> list[Finding]:
    out: list[Finding] = []
    lines = text.splitlines()
    if cuda_file:
        out.append(Finding(rel, 1, "cpp.cuda-source", f"CUDA source file ({len(lines)} lines)"))
    for i, line in enumerate(lines, 1):
        if "#" in line:
            m = _INCLUDE.match(line)
            if m:
                header = m.group(1).strip()
                if _RUNTIME_HEADERS.match(header):
                    out.append(Finding(rel, i, "cpp.cuda-runtime", evidence(line)))
                elif _LIBRARY_HEADERS.match(header):
                    out.append(Finding(rel, i, "cpp.cuda-library", evidence(line)))
                else:
                    for pat, vendor in _VENDOR_HEADERS:
                        if pat.match(header):
                            out.append(Finding(rel, i, f"vendor.{vendor}", evidence(line)))
                            break
                continue
        if "asm" in line and _PTX.search(line):
            out.append(Finding(rel, i, "cpp.inline-ptx", evidence(line)))
    return out


def scan_vendor_source(text: str, rel: str, vendor: str) -> list[Finding]:
    """A source file in a vendor language (.mlu BANG C, .mu MUSA): one informational finding."""
    return [Finding(rel, 1, f"vendor.{vendor}",
                    f"{vendor} source file ({len(text.splitlines())} lines)")]


def scan_cmake(text: str, rel: str) -> list[Finding]:
    return [Finding(rel, i, "cpp.cmake-cuda", evidence(line))
            for i, line in enumerate(text.splitlines(), 1)
            if not line.lstrip().startswith("#") and _CMAKE_CUDA.search(line)]


# -------------------------------------------------------------------------- requirements
_CUDA_TORCH = re.compile(r"download\.pytorch\.org/whl/(nightly/)?cu\d+|\+cu\d{2,3}\b")
_CONDA_CUDA = re.compile(r"^(pytorch-cuda|cudatoolkit|cuda-toolkit|cuda-runtime|cuda-nvcc|cudnn|"
                         r"nccl|cuda)$")
_EGG = re.compile(r"#egg=([A-Za-z0-9._-]+)")


def _dist_from_line(spec: str) -> str | None:
    spec = spec.strip()
    m = _EGG.search(spec)
    if m:
        return m.group(1)
    if "://" in spec or spec.startswith("git+"):
        tail = spec.rstrip("/").split("/")[-1]
        tail = re.sub(r"\.git$|@.*$", "", tail)
        return tail or None
    if " @ " in spec:
        spec = spec.split(" @ ", 1)[0]
    return requirement_name(spec)


def scan_requirements(text: str, rel: str, lookup: DistLookup) -> list[Finding]:
    out: list[Finding] = []
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if _CUDA_TORCH.search(line):
            out.append(Finding(rel, i, "req.cuda-torch", evidence(raw)))
        if line.startswith("-") and not line.startswith(("-e ", "--editable")):
            continue
        line = re.sub(r"^(-e|--editable)\s+", "", line)
        dist = _dist_from_line(line)
        if dist:
            pkg = lookup(dist)
            if pkg:
                out.append(Finding(rel, i, f"pkg.{pkg}", evidence(raw)))
    return out


def _line_of(text_lower: list[str], needle: str) -> int:
    n = needle.casefold()
    for i, line in enumerate(text_lower, 1):
        if n in line:
            return i
    return 1


def _req_strings(obj: Any) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, list):
        for x in obj:
            yield from _req_strings(x)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _req_strings(v)


def scan_pyproject(text: str, rel: str, lookup: DistLookup) -> tuple[list[Finding],
                                                                     FileProblem | None]:
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        return scan_requirements(text, rel, lookup), FileProblem(
            rel, f"malformed TOML ({' '.join(str(exc).split())[:120]}); scanned as text")
    def table(obj: Any, key: str) -> dict[str, Any]:
        v = obj.get(key) if isinstance(obj, dict) else None
        return v if isinstance(v, dict) else {}

    specs: list[str] = []
    project = table(data, "project")
    specs += list(_req_strings(project.get("dependencies", [])))
    specs += list(_req_strings(project.get("optional-dependencies", {})))
    specs += list(_req_strings(table(data, "build-system").get("requires", [])))
    specs += list(_req_strings(data.get("dependency-groups", {})))
    poetry = table(table(data, "tool"), "poetry")
    for key in ("dependencies", "dev-dependencies"):
        deps = poetry.get(key)
        if isinstance(deps, dict):
            specs += [str(k) for k in deps]
    lower = [ln.casefold() for ln in text.splitlines()]
    out: list[Finding] = []
    seen: set[tuple[int, str]] = set()
    for spec in specs:
        dist = _dist_from_line(spec)
        rules = []
        if _CUDA_TORCH.search(spec):
            rules.append("req.cuda-torch")
        pkg = lookup(dist) if dist else None
        if pkg:
            rules.append(f"pkg.{pkg}")
        for r in rules:
            line = _line_of(lower, dist or spec)
            if (line, r) not in seen:
                seen.add((line, r))
                out.append(Finding(rel, line, r, evidence(spec)))
    for i, raw in enumerate(text.splitlines(), 1):  # index URLs in [tool.*] tables
        if _CUDA_TORCH.search(raw) and (i, "req.cuda-torch") not in seen:
            seen.add((i, "req.cuda-torch"))
            out.append(Finding(rel, i, "req.cuda-torch", evidence(raw)))
    return out, None


def scan_setup_cfg(text: str, rel: str, lookup: DistLookup) -> list[Finding]:
    out: list[Finding] = []
    for i, raw in enumerate(text.splitlines(), 1):
        body = raw.split("=", 1)[1] if "=" in raw and not raw[:1].isspace() else raw
        for part in body.split(","):
            dist = requirement_name(part.strip())
            pkg = lookup(dist) if dist else None
            if pkg:
                out.append(Finding(rel, i, f"pkg.{pkg}", evidence(raw)))
                break
    return out


def scan_conda(text: str, rel: str, lookup: DistLookup) -> tuple[list[Finding],
                                                                 FileProblem | None]:
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        return [], FileProblem(rel, f"malformed YAML: {' '.join(str(exc).split())[:120]}")
    deps = data.get("dependencies") if isinstance(data, dict) else None
    if not isinstance(deps, list):
        return [], None
    lower = [ln.casefold() for ln in text.splitlines()]
    out: list[Finding] = []
    for dep in deps:
        pip_list = dep.get("pip") if isinstance(dep, dict) else None
        items = [(str(x), True) for x in pip_list] if isinstance(pip_list, list) else []
        if isinstance(dep, str):
            items = [(dep, False)]
        for spec, is_pip in items:
            if is_pip:
                dist = _dist_from_line(spec)
            else:  # conda: [channel::]name[=version[=build]]
                dist = re.split(r"[=<>!~ ]", spec.split("::")[-1].strip(), maxsplit=1)[0]
            if not dist:
                continue
            line = _line_of(lower, spec.split("::")[-1].strip()[:60])
            if not is_pip and _CONDA_CUDA.match(dist.casefold()):
                out.append(Finding(rel, line, "req.cuda-torch", evidence(spec)))
                continue
            if _CUDA_TORCH.search(spec):
                out.append(Finding(rel, line, "req.cuda-torch", evidence(spec)))
            pkg = lookup(dist)
            if pkg:
                out.append(Finding(rel, line, f"pkg.{pkg}", evidence(spec)))
    return out, None


# -------------------------------------------------------------------------- shell
_SH_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bNCCL_[A-Z0-9_]+"), "env.nccl"),
    (re.compile(r"\bCUDA_VISIBLE_DEVICES\b"), "env.cuda-visible-devices"),
    (re.compile(r"\bnvidia-smi\b"), "sh.nvidia-smi"),
    (re.compile(r"\btorchrun\b|torch\.distributed\.(run|launch)\b"), "sh.torchrun"),
    (re.compile(r"download\.pytorch\.org/whl/(nightly/)?cu\d+"), "req.cuda-torch"),
    (re.compile(r"^\s*FROM\s+(\S+/)?(nvcr\.io/nvidia/|nvidia/cuda\b)", re.I), "sh.cuda-image"),
)
_PIP = re.compile(r"\bpip3?\s+install\s+(.+)")


def scan_shell(text: str, rel: str, lookup: DistLookup) -> list[Finding]:
    out: list[Finding] = []
    for i, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        if stripped.startswith("#") and not stripped.startswith("#SBATCH"):
            continue
        rules = [r for pat, r in _SH_RULES if pat.search(line)]
        m = _PIP.search(line)
        if m:
            for tok in m.group(1).split():
                if tok in ("&&", "||", ";", "|", "\\"):
                    break
                tok = tok.strip("'\"")
                if tok.startswith("-"):
                    continue
                dist = _dist_from_line(tok)
                pkg = lookup(dist) if dist else None
                if pkg:
                    rules.append(f"pkg.{pkg}")
        for r in dict.fromkeys(rules):
            out.append(Finding(rel, i, r, evidence(line)))
    return out
