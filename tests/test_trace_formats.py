"""The trace-format registry and every Alibaba 2023 pod-list variant (fixtures written here).

Column sets of alibaba/clusterdata cluster-trace-gpu-v2023/csv (checked against the repository):
eleven columns in openb_pod_list_default, gpuspec05/10/20/25/33, cpu0/037/050/072/100/200/235/
250/300 and gpushare20/40/60/80/100; five (no times, QoS or gpu_spec) in multigpu20/30/40/50.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from suanli.catalog.loader import load_catalog
from suanli.errors import SuanliError
from suanli.sched.job import Job
from suanli.sim.formats import (
    FORMATS,
    detect_format,
    format_table,
    formats,
    get_format,
    load_trace,
    write_trace,
)
from suanli.sim.setup import prepare
from suanli.sim.traces import jitter_arrivals, load_alibaba_node_list

TIMED = ("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
         "deletion_time,scheduled_time\n")
UNTIMED = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n"
TIMED_VARIANTS = ["default", "gpuspec05", "gpuspec10", "gpuspec20", "gpuspec25", "gpuspec33",
                  "cpu0", "cpu037", "cpu050", "cpu072", "cpu100", "cpu200", "cpu235", "cpu250",
                  "cpu300", "gpushare20", "gpushare40", "gpushare60", "gpushare80",
                  "gpushare100"]
UNTIMED_VARIANTS = ["multigpu20", "multigpu30", "multigpu40", "multigpu50"]
NODES = ("sn,cpu_milli,memory_mib,gpu,model\n"
         "n0,96000,786432,8,V100M32\nn1,64000,262144,2,P100\nn2,32000,131072,4,G2\n"
         "n3,32000,262144,0,\nn4,32000,262144,0,nan\n")


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def timed_pods() -> str:
    """Invented pods covering each case: whole GPUs, a shared GPU, a multi-GPU gang, a type
    constraint, a CPU-only pod and a pod never scheduled."""
    return TIMED + (
        "p0,4000,8192,1,1000,,LS,Running,0,3600,10\n"
        "p1,2000,4096,1,250,T4,BE,Running,100,700,100\n"
        "p2,64000,262144,8,1000,V100M16|V100M32,Burstable,Succeeded,200,7400,260\n"
        "p3,8000,16384,0,0,,LS,Running,300,900,300\n"
        "p4,4000,8192,2,1000,G2,LS,Pending,400,460,\n"
    )


def untimed_pods() -> str:
    return UNTIMED + ("q0,4000,8192,1,1000\nq1,2000,4096,1,300\nq2,8000,16384,0,0\n"
                      "q3,64000,262144,8,1000\nq4,32000,131072,4,1000\n")


@pytest.mark.parametrize("variant", TIMED_VARIANTS)
def test_timed_pod_lists(tmp_path: Path, variant: str) -> None:
    p = write(tmp_path, f"openb_pod_list_{variant}.csv", timed_pods())
    assert detect_format(p) == "alibaba"
    tr = load_trace(p, catalog=load_catalog())
    assert tr.format == "alibaba" and [j.id for j in tr.jobs] == ["p0", "p1", "p2", "p4"]
    by = {j.id: j for j in tr.jobs}
    assert by["p0"].arrival == 0 and by["p0"].duration_ref == 3590
    assert by["p1"].gpu_fraction == 0.25 and by["p1"].allowed_chips == {"nvidia_t4"}
    assert by["p2"].gang == 8 and by["p2"].queue == "Burstable"
    assert by["p4"].duration_ref == 60 and by["p4"].allowed_chips == {"alibaba_g2"}
    assert any("1 CPU-only pods" in n for n in tr.notes)
    assert any("1 pods never scheduled" in n for n in tr.notes)


@pytest.mark.parametrize("variant", UNTIMED_VARIANTS)
def test_untimed_pod_lists_state_their_assumptions(tmp_path: Path, variant: str) -> None:
    p = write(tmp_path, f"openb_pod_list_{variant}.csv", untimed_pods())
    assert detect_format(p) == "alibaba-untimed"
    a = load_trace(p, seed=1)
    assert a.format == "alibaba-untimed"
    assert [j.id for j in a.jobs] == ["q0", "q1", "q3", "q4"]  # file order, CPU pod left out
    assert all(j.arrival == 0 and j.allowed_chips is None and j.queue == "default"
               for j in a.jobs)
    assert a.jobs[1].gpu_fraction == 0.3 and a.jobs[2].gang == 8
    assert all(j.duration_ref is not None and 1 <= j.duration_ref <= 30 * 86400 for j in a.jobs)
    text = " ".join(a.notes)
    assert "every pod arrives at 0 in file order" in text and "log-normal" in text
    assert "seed 1" in text
    b = load_trace(p, seed=2)
    assert [j.duration_ref for j in a.jobs] != [j.duration_ref for j in b.jobs]
    assert [j.duration_ref for j in a.jobs] == [j.duration_ref for j in load_trace(p, seed=1).jobs]


def test_untimed_simulates_end_to_end_with_a_node_list(tmp_path: Path) -> None:
    write(tmp_path, "openb_pod_list_multigpu50.csv", untimed_pods())
    write(tmp_path, "openb_node_list_gpu_node.csv", NODES)
    s = prepare(trace=tmp_path / "openb_pod_list_multigpu50.csv", seed=3)
    assert s.cluster.devices == 14 and s.trace.reference_chip == "nvidia_t4"
    assert len(s.trace.nodes) == 5 and all(j.work > 0 for j in s.trace.jobs)
    assert any("every pod arrives at 0" in n for n in s.notes)


def test_wrong_format_named_explicitly(tmp_path: Path) -> None:
    p = write(tmp_path, "pods.csv", untimed_pods())
    with pytest.raises(SuanliError, match=r"pods.csv: row 1: has no creation_time.*alibaba-"):
        load_trace(p, "alibaba")
    t = write(tmp_path, "timed.csv", timed_pods())
    with pytest.raises(SuanliError, match=r"has creation_time/deletion_time columns"):
        load_trace(t, "alibaba-untimed")


@pytest.mark.parametrize(
    ("head", "row", "match"),
    [
        (UNTIMED, "q0,1,1,x,1000", r"row 2: num_gpu: 'x' is not a number"),
        (UNTIMED, "q0,1,1,1.5,1000", r"row 2: num_gpu: must be a whole number, got 1.5"),
        (UNTIMED, "q0,1,1,1,", r"row 2: gpu_milli: is empty"),
        (UNTIMED, "q0,1,1,-1,1000", r"row 2: num_gpu: must be >= 0, got -1"),
        (TIMED, "p0,1,1,1,1000,,LS,Running,,10,0", r"row 2: creation_time: is empty"),
        (TIMED, "p0,1,1,1,1000,,LS,Running,0,nan,0", r"row 2: deletion_time: 'nan' is not a"),
        (TIMED, "p0,1,1,1,1000,A100,LS,Running,0,10,0",
         r"row 2: gpu_spec: unknown chip 'A100' in constraint"),
    ],
)
def test_pod_row_errors_name_file_row_column(tmp_path: Path, head: str, row: str,
                                             match: str) -> None:
    with pytest.raises(SuanliError, match=r"pods.csv: " + match) as exc:
        load_trace(write(tmp_path, "pods.csv", head + row + "\n"))
    assert "\n" not in exc.value.render()


def test_node_list_plain_nodes_incl_cpu_only(tmp_path: Path) -> None:
    nodes = load_alibaba_node_list(write(tmp_path, "openb_node_list_all_node.csv", NODES),
                                   load_catalog())
    assert [(n.node_id, n.devices) for n in nodes] == [("n0", 8), ("n1", 2), ("n2", 4),
                                                       ("n3", 0), ("n4", 0)]
    assert nodes[0].chip == "nvidia_v100" and nodes[2].chip == "alibaba_g2"
    assert nodes[3].chip == "" and nodes[0].cpu_milli == 96000
    bad = write(tmp_path, "n.csv", "sn,cpu_milli,memory_mib,gpu,model\nz,1,1,8,\n")
    with pytest.raises(SuanliError, match=r"n.csv: row 2: model: unknown GPU model ''"):
        load_alibaba_node_list(bad)
    cpu = write(tmp_path, "c.csv", "sn,cpu_milli,memory_mib,gpu,model\nz,1,1,0,\n")
    with pytest.raises(SuanliError, match=r"c.csv: node list has no GPU nodes"):
        load_alibaba_node_list(cpu)


def test_registry_declares_every_format() -> None:
    names = [f.name for f in formats()]
    assert names == ["gavel", "philly", "alibaba", "alibaba-untimed", "suanli"]
    for f in formats():
        assert f.columns and f.title and f.reference_chip
    assert get_format("CSV") is get_format("suanli") is get_format("synthetic")
    assert {"suanli", "synthetic", "alibaba-untimed"} <= set(FORMATS)
    rows = format_table()
    assert rows[3]["format"] == "alibaba-untimed" and "arrives at 0" in rows[3]["assumptions"]
    with pytest.raises(SuanliError, match=r"trace_format: unknown trace format 'x'"):
        get_format("x")


def test_write_through_the_registry(tmp_path: Path) -> None:
    jobs = [Job(id="a", arrival=1.0, gang=2, work=5.0), Job(id="b", arrival=0.0, gang=1,
                                                            work=7.0)]
    p = write_trace(jobs, tmp_path / "j.csv")
    assert detect_format(p) == "suanli"
    back = load_trace(p).jobs
    assert [(j.id, j.arrival, j.gang, j.work) for j in back] == [("a", 1.0, 2, 5.0),
                                                                 ("b", 0.0, 1, 7.0)]
    with pytest.raises(SuanliError, match=r"trace format 'philly' cannot be written"):
        write_trace(jobs, tmp_path / "p.csv", "philly")


def test_jitter_keeps_order_and_changes_with_seed() -> None:
    jobs = [Job(id=str(i), arrival=float(t), gang=1, work=1.0)
            for i, t in enumerate([0, 10, 10, 40, 100])]
    a = jitter_arrivals(jobs, 0.5, seed=1)
    b = jitter_arrivals(jobs, 0.5, seed=2)
    ta, tb = [j.arrival for j in a], [j.arrival for j in b]
    assert ta == sorted(ta) and ta[1] == ta[2] and ta[0] == 0.0  # ties stay together
    assert ta != tb and ta == [j.arrival for j in jitter_arrivals(jobs, 0.5, seed=1)]
    gaps = [y - x for x, y in itertools.pairwise([0, 10, 10, 40, 100])]
    new = [y - x for x, y in itertools.pairwise(ta)]
    assert all(0.5 * g - 1e-9 <= n <= 1.5 * g + 1e-9 for g, n in zip(gaps, new, strict=True))
    assert jitter_arrivals(jobs, 0.0, seed=1) == jobs
    with pytest.raises(SuanliError, match="jitter: must be in"):
        jitter_arrivals(jobs, 2.0, seed=1)


def test_prepare_errors_name_parameters_not_flags() -> None:
    for kw, field in (({"scale_fleet": 0.0}, "scale_fleet"), ({"load": -1.0}, "load"),
                      ({"max_jobs": 0}, "max_jobs"), ({"jitter": 1.5}, "jitter"),
                      ({"trace_format": "nope"}, "trace_format"),
                      ({"trace_format": "philly"}, "trace")):
        with pytest.raises(SuanliError) as exc:
            prepare(**kw)  # type: ignore[arg-type]
        assert exc.value.field == field and "--" not in exc.value.render()
