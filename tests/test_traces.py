"""Trace loaders: real files, malformed files (file/row/column in one line), generator."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from needs import data_file
from suanli.catalog.loader import load_catalog
from suanli.errors import SuanliError
from suanli.sim.traces import (
    demo_trace_path,
    detect_format,
    load_alibaba,
    load_alibaba_nodes,
    load_gavel,
    load_jobs_csv,
    load_philly,
    load_trace,
    synthetic_jobs,
    write_jobs_csv,
)

PHILLY_HEAD = "timestamp,duration,num_gpus,gpu_time,cluster\n"
ALI_HEAD = ("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
            "deletion_time,scheduled_time\n")
ALI5_HEAD = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n"  # openb_pod_list_multigpu*
NODE_HEAD = "sn,cpu_milli,memory_mib,gpu,model\n"


def head(src: Path, dst: Path, n: int) -> Path:
    with src.open() as fh:
        dst.write_text("".join(itertools.islice(fh, n)))
    return dst


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def test_philly_real_head(tmp_path: Path) -> None:
    tr = load_philly(head(data_file("philly_head.csv"), tmp_path / "philly.csv", 301))
    assert len(tr.jobs) == 300 and tr.format == "philly"
    assert min(j.arrival for j in tr.jobs) == 0.0
    assert all(j.duration_ref and j.duration_ref > 0 and j.gang >= 1 for j in tr.jobs)
    assert all(j.workload is not None for j in tr.jobs)
    assert "seeded rule" in tr.notes[0]
    again = load_philly(tmp_path / "philly.csv")
    assert [j.cuda_only for j in again.jobs] == [j.cuda_only for j in tr.jobs]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("timestamp,duration,cluster\n2017-10-09 07:01:55,66.0,a\n",
         r"t.csv: row 1: missing column\(s\) num_gpus"),
        (PHILLY_HEAD + "2017-10-09 07:01:55,66.0,1,66,a\n2017-10-09 07:01:56,-5,1,1,a\n",
         r"t.csv: row 3: duration: must be > 0, got -5"),
        (PHILLY_HEAD + "2017-10-09 07:01:55,66.0,one,66,a\n",
         r"t.csv: row 2: num_gpus: 'one' is not a number"),
        (PHILLY_HEAD + "yesterday,66.0,1,66,a\n", r"t.csv: row 2: timestamp: 'yesterday'"),
        (PHILLY_HEAD, r"t.csv: trace has no jobs"),
    ],
)
def test_philly_malformed(tmp_path: Path, body: str, match: str) -> None:
    with pytest.raises(SuanliError, match=match) as exc:
        load_philly(write(tmp_path, "t.csv", body))
    assert "\n" not in exc.value.render()


def test_alibaba_real_with_nodes(tmp_path: Path) -> None:
    cat = load_catalog()
    pods = head(data_file("alibaba_pods_gpuspec33_head.csv"), tmp_path / "pods.csv", 400)
    tr = load_alibaba(pods, nodes=data_file("alibaba_node_list_gpu_node.csv"),
                      catalog=cat)
    assert tr.fleet is not None and tr.fleet.accelerators == 6212
    assert any(j.gpu_fraction < 1 for j in tr.jobs)
    assert any(j.allowed_chips for j in tr.jobs)
    chips = {g.chip for g in tr.fleet.sites[0].node_groups}
    assert "alibaba_g2" in chips and "nvidia_t4" in chips  # G2 stays opaque
    assert any("CPU-only" in n for n in tr.notes)


def test_alibaba_malformed(tmp_path: Path) -> None:
    p = write(tmp_path, "pods.csv", ALI_HEAD + "p0,1,1,1,1000,T4|H9000,LS,Running,0,10,0\n")
    with pytest.raises(SuanliError, match=r"pods.csv: row 2: gpu_spec: unknown chip 'H9000'"):
        load_alibaba(p)
    p = write(tmp_path, "pods.csv", ALI_HEAD + "p0,1,1,1,1000,,LS,Running,100,10,100\n")
    with pytest.raises(SuanliError, match=r"row 2: deletion_time: negative duration"):
        load_alibaba(p)
    p = write(tmp_path, "pods.csv", ALI_HEAD + "p0,1,1,x,1000,,LS,Running,0,10,0\n")
    with pytest.raises(SuanliError, match=r"row 2: num_gpu: 'x' is not a number"):
        load_alibaba(p)
    n = write(tmp_path, "nodes.csv", "sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,8,Z9\n")
    with pytest.raises(SuanliError, match=r"nodes.csv: row 2: model: unknown GPU model 'Z9'"):
        load_alibaba_nodes(n)


def test_gavel_real_and_malformed(tmp_path: Path) -> None:
    tr = load_gavel(data_file("gavel_300jobs.trace"))
    assert len(tr.jobs) == 300
    j = tr.jobs[0]
    assert j.job_type == "Transformer (batch size 128)" and j.work == 19605 and j.gang == 1
    bad = write(tmp_path, "x.trace", "A3C\tcmd\tdir\t--s\t0\t100\t1\t1\t-1\n")
    with pytest.raises(SuanliError, match=r"x.trace: line 1: expected 10 tab-separated"):
        load_gavel(bad)
    bad = write(tmp_path, "x.trace", "A3C\tcmd\tdir\t--s\t0\tmany\t1\t1\t-1\t0\n")
    with pytest.raises(SuanliError, match=r"line 1: total_steps: 'many' is not a number"):
        load_gavel(bad)
    bad = write(tmp_path, "x.trace", "A3C\tcmd\tdir\t--s\t0\t10\t1.5\t1\t-1\t0\n")
    with pytest.raises(SuanliError, match=r"line 1: scale_factor"):
        load_gavel(bad)


def test_synthetic_roundtrip_and_seed(tmp_path: Path) -> None:
    a = synthetic_jobs(50, seed=7, sites=["east", "west"])
    b = synthetic_jobs(50, seed=7, sites=["east", "west"])
    c = synthetic_jobs(50, seed=8, sites=["east", "west"])
    assert a == b and a != c
    kinds = {j.workload.kind for j in synthetic_jobs(400, seed=1)}
    assert kinds == {"train", "infer", "hpc"}
    p = write_jobs_csv(a, tmp_path / "jobs.csv")
    back = load_jobs_csv(p).jobs
    assert [(j.id, j.gang, j.workload, j.cuda_only, j.fp64, j.home_site) for j in back] == [
        (j.id, j.gang, j.workload, j.cuda_only, j.fp64, j.home_site) for j in a]


def test_jobs_csv_malformed(tmp_path: Path) -> None:
    head_ = "id,arrival_s,gang,work,kind,precision\n"
    with pytest.raises(SuanliError, match=r"j.csv: row 2: precision: unknown precision 'fp7'"):
        load_jobs_csv(write(tmp_path, "j.csv", head_ + "a,0,1,10,train,fp7\n"))
    with pytest.raises(SuanliError, match=r"j.csv: row 3: id: duplicate job id 'a'"):
        load_jobs_csv(write(tmp_path, "j.csv", head_ + "a,0,1,10,train,fp16\na,1,1,1,train,\n"))
    with pytest.raises(SuanliError, match=r"row 2: work: needs work > 0"):
        load_jobs_csv(write(tmp_path, "j.csv", head_ + "a,0,1,0,train,fp16\n"))


def test_bundled_demo_trace_and_detection(tmp_path: Path) -> None:
    assert detect_format(demo_trace_path()) == "suanli"
    assert len(load_trace(demo_trace_path()).jobs) == 500
    assert detect_format(data_file("gavel_300jobs.trace")) == "gavel"
    assert detect_format(data_file("philly_head.csv")) == "philly"
    assert detect_format(data_file("alibaba_pods_default_head.csv")) == "alibaba"
    with pytest.raises(SuanliError, match="cannot tell the trace format"):
        detect_format(write(tmp_path, "w.csv", "a,b,c\n"))
    with pytest.raises(SuanliError, match=r"missing.csv: file not found"):
        load_trace(tmp_path / "missing.csv", "philly")


_CELL = st.one_of(
    st.text(alphabet="0123456789.-e ,|\"'x", max_size=8),
    st.integers(-10, 10_000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(_CELL, min_size=0, max_size=12), min_size=0, max_size=6),
       header=st.sampled_from([PHILLY_HEAD, ALI_HEAD, ALI5_HEAD, ""]),
       fmt=st.sampled_from(["philly", "alibaba", "alibaba-untimed", "gavel", "auto"]))
def test_any_garbage_trace_is_a_suanli_error_or_loads(tmp_path: Path, rows: list[list[str]],
                                                       header: str, fmt: str) -> None:
    """A trace parser never crashes with a traceback: it loads valid jobs or says what is wrong."""
    sep = "\t" if fmt == "gavel" else ","
    path = write(tmp_path, "fuzz.csv", header + "".join(sep.join(r) + "\n" for r in rows))
    try:
        tr = load_trace(path, fmt)
    except SuanliError as exc:
        assert "\n" not in exc.render() and "fuzz.csv" in exc.render()
    else:
        assert tr.jobs  # an empty trace must be an error, not a silent empty run
        for j in tr.jobs:
            assert j.gang >= 1 and j.arrival >= 0
            assert (j.work is not None and j.work > 0) or (j.duration_ref or 0) >= 0


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(_CELL, min_size=0, max_size=6), min_size=0, max_size=6))
def test_any_garbage_node_list_is_a_suanli_error_or_loads(tmp_path: Path,
                                                          rows: list[list[str]]) -> None:
    from suanli.sim.traces import load_alibaba_node_list

    path = write(tmp_path, "nodes.csv", NODE_HEAD + "".join(",".join(r) + "\n" for r in rows))
    try:
        nodes = load_alibaba_node_list(path)
    except SuanliError as exc:
        assert "\n" not in exc.render() and "nodes.csv" in exc.render()
    else:
        assert any(n.devices > 0 for n in nodes)
        assert all(n.devices >= 0 and (n.chip == "") == (n.devices == 0) for n in nodes)
