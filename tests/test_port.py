"""port-check: scanners on sample projects (one per rule family), verdicts from the sourced rules,
bad input, user rule overrides, CLI, and the scheduler's allowed-stacks filter."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_support import run, run_error, run_json
from suanli.catalog import load_catalog
from suanli.catalog.stacks import load_stacks, stack_ids
from suanli.errors import SuanliError
from suanli.port import analyze, load_rules
from suanli.port.analyze import scan_project

DATA = Path(__file__).parent / "data" / "port"


def found(path: Path | str) -> set[tuple[str, int, str]]:
    return {(f.file, f.line, f.rule) for f in analyze(path).findings}


def verdicts(path: Path | str, **kw: object) -> dict[str, str]:
    return {v.stack: v.verdict for v in analyze(path, **kw).verdicts}  # type: ignore[arg-type]


# ------------------------------------------------------------------ catalogue stack facts
def test_every_catalogued_chip_maps_to_a_stack_with_sourced_facts() -> None:
    table = load_stacks()
    for chip in load_catalog():
        assert table.stack_of(chip) is not None, chip.id
    for s in table:
        for name, fact in s.facts().items():
            assert fact.value is None or fact.source, (s.id, name)
            assert fact.value is not None or fact.note, (s.id, name)
    assert table.get("CANN").device.value == "npu"
    assert table.get("cann").collective.value == "HCCL"
    assert table.get("rocm").device.value == "cuda"


def test_catalogue_chip_files_still_load_without_stacks_yaml() -> None:
    # stacks.yaml lives beside the chip files but is not a chip file
    assert len(load_catalog()) >= 47


def test_bad_stacks_file_names_field(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("stacks:\n  - id: foo\n    name: Foo\n    match: [Foo]\n"
                   "    pytorch_build: {value: x}\n    collective: {note: n}\n"
                   "    dist_backend: {note: n}\n    device: {note: n}\n", encoding="utf-8")
    with pytest.raises(SuanliError) as info:
        load_stacks([bad])
    msg = str(info.value)
    assert "s.yaml" in msg and "stack 'foo'" in msg and "source" in msg


# ------------------------------------------------------------------ scanners, one per family
def test_python_family_rules_and_lines() -> None:
    got = found(DATA / "python_cuda")
    expected = {
        ("train.py", 7, "py.cuda-api"),  # from torch.cuda import amp
        ("train.py", 9, "env.nccl"),
        ("train.py", 10, "env.cuda-visible-devices"),
        ("train.py", 14, "py.nccl-backend"),
        ("train.py", 15, "py.cuda-device"),  # "cuda:0"
        ("train.py", 16, "py.cuda-device"),  # .cuda()
        ("train.py", 17, "py.cuda-api"),  # th.cuda.synchronize() through the alias
        ("train.py", 18, "py.tf32"),
        ("train.py", 19, "py.cuda-graph"),
        ("train.py", 20, "py.fp8"),
        ("train.py", 21, "py.cuda-default-generators"),
        ("train.py", 22, "py.cuda-api"),  # amp.autocast() resolves to torch.cuda.amp
        ("train.py", 24, "py.jit-script"),
    }
    assert got == expected  # and nothing else: the sentence containing "cuda" is not a device


def test_cpp_family() -> None:
    got = found(DATA / "cpp_ext")
    assert ("csrc/kernel.cu", 1, "cpp.cuda-source") in got
    assert ("csrc/kernel.cu", 1, "cpp.cuda-runtime") in got
    assert ("csrc/kernel.cu", 2, "cpp.cuda-library") in got  # cublas_v2.h
    assert ("csrc/kernel.cu", 8, "cpp.inline-ptx") in got
    assert ("csrc/common.cuh", 2, "cpp.cuda-runtime") in got  # cuda_fp16.h
    assert ("csrc/ops.cpp", 2, "cpp.cuda-runtime") in got  # c10/cuda
    assert ("csrc/ops.cpp", 3, "cpp.cuda-library") in got  # nccl.h
    assert ("setup.py", 7, "py.cpp-extension") in got  # CUDAExtension(...)
    assert ("setup.py", 6, "pkg.apex") in got  # install_requires string in setup.py
    assert ("CMakeLists.txt", 2, "cpp.cmake-cuda") in got
    assert ("CMakeLists.txt", 3, "cpp.cmake-cuda") not in got  # a comment
    assert ("csrc/ops.cpp", 1, "cpp.cuda-runtime") not in got  # torch/extension.h


def test_triton_family() -> None:
    got = found(DATA / "triton_kernels")
    assert {(r, ln) for _, ln, r in got if r == "py.triton-kernel"} == {
        ("py.triton-kernel", 5), ("py.triton-kernel", 12), ("py.triton-kernel", 13)}
    v = verdicts(DATA / "triton_kernels")
    assert v["cuda"] == "unchanged" and v["rocm"] == "unchanged"
    assert v["cann"] == "unknown" and v["supa"] == "unknown"  # undocumented is never "works"


def test_requirements_family() -> None:
    got = found(DATA / "requirements")
    assert {
        ("requirements.txt", 2, "req.cuda-torch"),
        ("requirements.txt", 4, "pkg.flash-attn"),
        ("requirements.txt", 5, "pkg.apex"),  # git URL with #egg=
        ("requirements.txt", 7, "pkg.nvidia-wheels"),
        ("pyproject.toml", 6, "pkg.xformers"),
        ("pyproject.toml", 10, "pkg.bitsandbytes"),
        ("environment.yml", 5, "req.cuda-torch"),  # pytorch-cuda
        ("environment.yml", 7, "pkg.vllm"),  # pip sub-list
        ("setup.cfg", 5, "pkg.deepspeed"),
    } == got


def test_shell_family() -> None:
    got = found(DATA / "shell")
    assert {
        ("launch.sh", 3, "env.nccl"),
        ("launch.sh", 4, "env.cuda-visible-devices"),
        ("launch.sh", 5, "sh.nvidia-smi"),
        ("launch.sh", 6, "pkg.flash-attn"),
        ("launch.sh", 7, "sh.torchrun"),
        ("Dockerfile", 1, "sh.cuda-image"),
        ("Dockerfile", 2, "env.nccl"),
    } == got  # the commented NCCL_DEBUG line is not a finding


# ------------------------------------------------------------------ verdicts
def test_clean_code_runs_unchanged_everywhere() -> None:
    r = analyze(DATA / "clean")
    assert r.findings == []
    assert {v.verdict for v in r.verdicts} == {"unchanged"}
    assert r.allowed_stacks() == load_stacks().ids


def test_shim_only_project() -> None:
    r = analyze(DATA / "shim_only")
    v = {x.stack: x for x in r.verdicts}
    assert v["cuda"].verdict == v["rocm"].verdict == v["dtk"].verdict == "unchanged"
    assert v["cann"].verdict == "shim"
    assert v["cann"].shims == ["from torch_npu.contrib import transfer_to_npu"]
    assert v["musa"].verdict == "shim" and "torchada" in v["musa"].shims[0]
    assert v["topsrider"].shims == ["from torch_gcu import transfer_to_gcu"]
    assert v["supa"].verdict == "unknown"  # no documented shim: unknown, not "works"
    allowed = r.allowed_stacks()
    assert "cann" in allowed and "supa" not in allowed and "xpu" not in allowed


def _catalogue_without(monkeypatch: pytest.MonkeyPatch, drop: set[str]) -> None:
    """Make the port analysis see the bundled catalogue minus the chips in ``drop``."""
    import suanli.catalog as catalog

    full = list(load_catalog())
    monkeypatch.setattr(catalog, "load_catalog", lambda *a, **k: [c for c in full
                                                                 if c.id not in drop])


def _fp8_chips(stack: str) -> list[str]:
    from suanli.catalog.stacks import load_stacks as _ls

    table = _ls()
    return [c.id for c in load_catalog()
            if table.stack_of(c) == stack and c.peak["fp8"].status != "unsupported"]


def test_fp8_blocked_only_when_no_chip_of_the_stack_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # the real catalogue: Ascend 950PR has FP8, so FP8 code is not blocked on CANN by the catalogue
    assert "ascend_950pr" in _fp8_chips("cann")
    r = analyze(DATA / "python_cuda", targets=["cann"])
    fp8 = [i for i in r.verdicts[0].items if i.finding.rule == "py.fp8"]
    assert fp8[0].outcome != "blocked" and "suanli catalogue" not in (fp8[0].source or "")
    # without the FP8-capable Ascend parts, every Ascend chip marks FP8 unsupported -> blocked
    _catalogue_without(monkeypatch, set(_fp8_chips("cann")))
    r = analyze(DATA / "python_cuda", targets=["cann"])
    fp8 = [i for i in r.verdicts[0].items if i.finding.rule == "py.fp8"]
    assert fp8[0].outcome == "blocked" and "suanli catalogue" in (fp8[0].source or "")
    assert r.verdicts[0].verdict == "blocked"


def test_python_cuda_verdicts_use_sourced_rules_and_catalogue() -> None:
    r = analyze(DATA / "python_cuda", targets=["cann", "CUDA", "musa"])
    v = {x.stack: x for x in r.verdicts}
    assert list(v) == ["cann", "cuda", "musa"]
    assert v["cuda"].verdict == "unchanged"
    assert v["cann"].verdict == "port"  # FP8: see the test above (950PR has it)
    # default_generators is documented as not covered by transfer_to_npu
    gen = [i for i in v["cann"].items if i.finding.rule == "py.cuda-default-generators"]
    assert gen[0].outcome == "port" and "hiascend" in (gen[0].source or "")
    # MUSA: CUDA graphs via torchada shim, but FP8/TF32 undocumented -> unknown somewhere
    graph = [i for i in v["musa"].items if i.finding.rule == "py.cuda-graph"]
    assert graph[0].outcome == "shim"


def test_cpp_extension_needs_porting_except_where_undocumented() -> None:
    v = verdicts(DATA / "cpp_ext")
    assert v["cuda"] == "unchanged"
    for s in ("rocm", "dtk", "musa", "cann", "neuware", "xpu", "topsrider", "supa"):
        assert v[s] == "port", s
    assert v["corex"] == "unknown" and v["maca"] == "unknown"


def test_every_rule_entry_is_sourced_or_explained() -> None:
    book = load_rules()
    for rid in book.rule_ids():
        for sid in load_stacks().ids:
            res = book.resolve(rid, sid)
            if res.outcome == "unknown":
                assert res.note, (rid, sid)
            else:
                assert res.source and len(res.source) >= 8, (rid, sid)
            if res.outcome == "shim":
                assert res.shim, (rid, sid)


# ------------------------------------------------------------------ bad input
def test_bad_files_are_reported_and_never_stop_the_analysis(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("import torch\ntorch.cuda.synchronize()\n", encoding="utf-8")
    (tmp_path / "py2.py").write_text('print "hi"\nx = torch.cuda.device_count()\n',
                                     encoding="utf-8")
    (tmp_path / "blob.py").write_bytes(b"\x00\x01torch.cuda\x00")
    (tmp_path / "latin.sh").write_bytes(b"export NCCL_DEBUG=INFO # caf\xe9\n")
    (tmp_path / "huge.py").write_text("x = 'cuda'\n" * 2000, encoding="utf-8")
    (tmp_path / "loop.py").symlink_to(tmp_path / "loop.py")
    (tmp_path / "dangling.cu").symlink_to(tmp_path / "missing.cu")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "deep.py").write_text("x = " + "(" * 200 + "'cuda'" + ")" * 200 + "\n",
                                      encoding="utf-8")
    r = analyze(tmp_path, max_bytes=10_000)
    problems = {p.file: p.problem for p in r.problems}
    assert "syntax error" in problems["py2.py"]
    assert "binary" in problems["blob.py"]
    assert "too large" in problems["huge.py"]
    assert "symlink" in problems["loop.py"]
    assert "symlink" in problems["dangling.cu"]
    assert "not followed" in problems["sub/up"]
    assert "not UTF-8" in problems["latin.sh"]
    got = {(f.file, f.line, f.rule, f.text_match) for f in r.findings}
    assert ("ok.py", 2, "py.cuda-api", False) in got
    assert ("py2.py", 2, "py.cuda-api", True) in got  # text fallback keeps the finding
    assert ("latin.sh", 1, "env.nccl", False) in got
    assert any(f.file == "deep.py" and f.rule == "py.cuda-device" for f in r.findings)


def test_unreadable_input_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(SuanliError, match="no such file"):
        analyze(tmp_path / "nope")
    (tmp_path / "a.bin").write_bytes(b"x")
    with pytest.raises(SuanliError, match="not a file type"):
        analyze(tmp_path / "a.bin")
    if os.geteuid() != 0:  # root can read anything
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0)
        try:
            with pytest.raises(SuanliError, match="cannot read"):
                analyze(locked)
        finally:
            locked.chmod(0o755)


NAMES = ("x.py", "k.cu", "a.cpp", "requirements.txt", "pyproject.toml", "environment.yml",
         "run.sh", "setup.py", "setup.cfg", "CMakeLists.txt", "Dockerfile")


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(NAMES), data=st.binary(max_size=400))
def test_any_bytes_never_crash(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    findings, problems, kinds, _ = scan_project(tmp_path, load_rules())
    assert sum(kinds.values()) + len(problems) >= 1
    assert all(f.line >= 1 for f in findings)
    assert not any("scanner error" in p.problem for p in problems), problems


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(list("torch.cuda('nccl')\n #=:\"NCCL_X@triton.jit")),
                    max_size=300))
def test_any_python_like_text_never_crashes(tmp_path: Path, text: str) -> None:
    (tmp_path / "t.py").write_text(text, encoding="utf-8")
    findings, problems, _, _ = scan_project(tmp_path, load_rules())
    assert not any("scanner error" in p.problem for p in problems), problems
    assert all(f.file == "t.py" for f in findings)


# ------------------------------------------------------------------ user rule overrides
def test_user_rules_override_per_rule_and_stack(tmp_path: Path) -> None:
    user = tmp_path / "mine.yaml"
    user.write_text(
        "rules:\n  py.cuda-api:\n    stacks:\n"
        "      supa: {outcome: shim, shim: 'import my_supa_shim', source: 'our lab, 2026-11'}\n"
        "  py.cuda-device:\n    stacks:\n"
        "      supa: {outcome: shim, shim: 'import my_supa_shim', source: 'our lab, 2026-11'}\n",
        encoding="utf-8")
    v = {x.stack: x for x in analyze(DATA / "shim_only", rules=[user]).verdicts}
    assert v["supa"].verdict == "shim" and v["supa"].shims == ["import my_supa_shim"]
    assert v["cann"].verdict == "shim"  # untouched entries keep the bundled rule


@pytest.mark.parametrize(("text", "needle"), [
    ("rules:\n  py.cuda-api:\n    stacks:\n      cann: {outcome: works, source: 'x' }\n",
     "outcome"),
    ("rules:\n  py.cuda-api:\n    stacks:\n      cann: {outcome: port}\n", "source"),
    ("rules:\n  py.cuda-api:\n    stacks:\n      cann: {outcome: unknown}\n", "note"),
    ("rules:\n  py.cuda-api:\n    stacks:\n      nosuch: {outcome: unknown, note: n}\n",
     "unknown stack"),
    ("rules:\n  py.new: {stacks: {}}\n", "title"),
    ("packages:\n  foo: {pip: [foo], default: port}\n", "default_source"),
    ("rules: [1, 2]\nwhat: 1\n", "unknown top-level"),
])
def test_bad_user_rules_name_file_entry_field(tmp_path: Path, text: str, needle: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(SuanliError) as info:
        load_rules([bad])
    assert needle in str(info.value)


# ------------------------------------------------------------------ CLI
def test_cli_json_html_and_targets(tmp_path: Path) -> None:
    html = tmp_path / "r.html"
    data = run_json("port-check", str(DATA / "shim_only"), "--target", "cann",
                    "-t", "supa", "--html", str(html))
    assert [v["stack"] for v in data["verdicts"]] == ["cann", "supa"]
    assert data["verdicts"][0]["label"] == "needs a shim"
    assert data["allowed_stacks"] == ["cann"]
    page = html.read_text(encoding="utf-8")
    assert "infer.py" in page and "transfer_to_npu" in page and "<table>" in page
    assert run("port-check", str(DATA / "shim_only"), "--allowed").strip() == (
        "cuda|rocm|dtk|musa|cann|neuware|corex|maca|topsrider")
    out = run("port-check", str(DATA / "cpp_ext"), "-t", "rocm")
    assert "needs porting" in out and "csrc/kernel.cu:8 cpp.inline-ptx" in out


def test_cli_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert "no such file" in run_error(capsys, "port-check", str(tmp_path / "missing"))
    assert "unknown stack" in run_error(capsys, "port-check", str(DATA / "clean"),
                                        "--target", "nosuch")


# ------------------------------------------------------------------ scheduler connection
def test_allowed_stacks_filter_uses_port_check_result() -> None:
    from suanli.sched.cluster import Pool
    from suanli.sched.filters import DEFAULT_FILTERS, allowed_stacks_filter, filter_signature
    from suanli.sched.job import Job

    cat = load_catalog()
    report = analyze(DATA / "shim_only")
    job = Job(id="j", arrival=0, gang=1, work=1.0, stacks=frozenset(report.allowed_stacks()))

    def pool(chip_id: str) -> Pool:
        return Pool(0, "s", None, chip_id, cat.get(chip_id), 8, 1.2, 0.5, 0.5, 10.0, 400.0, True)

    assert allowed_stacks_filter(job, pool("nvidia_h800_sxm")) is None
    assert allowed_stacks_filter(job, pool("ascend_910b")) is None  # shim counts as allowed
    reason = allowed_stacks_filter(job, pool("biren_br100"))
    assert reason is not None and "supa" in reason
    kernels = analyze(DATA / "cpp_ext")
    job2 = Job(id="k", arrival=0, gang=1, work=1.0, stacks=frozenset(kernels.allowed_stacks()))
    assert allowed_stacks_filter(job2, pool("ascend_910b")) is not None
    assert allowed_stacks_filter(job2, pool("hygon_k100")) is not None
    assert allowed_stacks_filter(Job(id="n", arrival=0, gang=1, work=1.0),
                                 pool("biren_br100")) is None  # no list: any stack
    assert allowed_stacks_filter in DEFAULT_FILTERS
    assert filter_signature(job) != filter_signature(job2)


def test_trace_csv_stacks_column(tmp_path: Path) -> None:
    from suanli.sim.traces import load_jobs_csv

    csv = tmp_path / "t.csv"
    csv.write_text("id,arrival_s,gang,work,kind,precision,stacks\n"
                   "a,0,1,1e15,train,bf16,CUDA|cann\nb,1,1,1e15,train,bf16,\n", encoding="utf-8")
    jobs = load_jobs_csv(csv).jobs
    assert jobs[0].stacks == frozenset({"cuda", "cann"}) and jobs[1].stacks is None
    csv.write_text("id,arrival_s,gang,work,kind,precision,stacks\n"
                   "a,0,1,1e15,train,bf16,cudaa\n", encoding="utf-8")
    with pytest.raises(SuanliError) as info:
        load_jobs_csv(csv)
    assert "row" in str(info.value) and "stacks" in str(info.value) and "cudaa" in str(info.value)


def test_stack_ids_normalise_names() -> None:
    assert stack_ids(["CANN (torch_npu)", "DTK", "rocm"]) == frozenset({"cann", "dtk", "rocm"})


def test_json_is_serialisable_with_problems(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("print 'x'\nimport flash_attn\n", encoding="utf-8")
    data = analyze(tmp_path).as_dict()
    json.dumps(data)
    assert data["problems"][0]["file"] == "a.py"
    assert data["findings"][0]["rule"] == "pkg.flash-attn" and data["findings"][0]["text_match"]


def test_pruned_walk_finds_what_the_full_walk_finds() -> None:
    """The speed-up (skip subtrees without a trigger word) must not lose findings."""
    import ast

    from suanli.port.scan_python import make_trigger, scan_python_tree, trigger_lines

    book = load_rules()
    imports = book.import_index()
    trigger = make_trigger(list(imports))
    src = Path(__file__).resolve().parents[1] / "src"
    files = [*DATA.rglob("*.py"), *src.rglob("*.py"), Path(__file__)]
    extra = ("from torch.backends import cudnn as c\nx = c.benchmark\n"
             "from torch.cuda import amp\n\n@triton.jit\ndef f():\n    pass\n"
             "with amp.autocast():\n    pass\ny = torch.backends.cudnn.deterministic\n")
    texts = [p.read_bytes() for p in files] + [extra.encode()]
    for data in texts:
        tree = ast.parse(data)
        text = data.decode()
        full = {(f.line, f.rule) for f in scan_python_tree(tree, "f", text, imports)}
        pruned = {(f.line, f.rule) for f in scan_python_tree(
            tree, "f", text, imports, None, trigger_lines(data, trigger))}
        assert full == pruned


def test_existing_vendor_code_is_reported_but_never_changes_a_verdict() -> None:
    r = analyze(DATA / "vendor_code")
    assert {(f.file, f.line, f.rule) for f in r.findings} == {
        ("npu_ops.py", 3, "vendor.cann"),
        ("csrc/add.mlu", 1, "vendor.neuware"),
        ("csrc/op_npu.cpp", 1, "vendor.cann"),
        ("csrc/op_npu.cpp", 2, "vendor.rocm"),
    }
    v = {x.stack: x for x in r.verdicts}
    assert {x.verdict for x in r.verdicts} == {"unchanged"}
    assert v["cann"].vendor_files == ["csrc/op_npu.cpp", "npu_ops.py"]
    assert v["neuware"].vendor_files == ["csrc/add.mlu"] and v["supa"].vendor_files == []
