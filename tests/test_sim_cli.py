"""`suanli simulate` end to end: JSON, HTML, errors as one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from needs import data_file
from suanli.cli import app, main

runner = CliRunner()


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_demo_json_compare() -> None:
    r = runner.invoke(app, ["simulate", "--json", "--max-jobs", "80", "--policy", "fifo",
                            "--compare", "max-min", "--compare", "max-min-agnostic"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["accelerators"] > 1000 and data["jobs"] == 80
    assert [m["policy"] for m in data["results"]] == ["fifo", "max-min", "max-min-agnostic"]
    for m in data["results"]:
        assert m["completed"] + m["unrunnable"] == 80
        assert m["jct_s"]["mean"] > 0
    assert any("demo trace" in n for n in data["notes"])


def test_table_and_html(tmp_path: Path) -> None:
    out = tmp_path / "sim.html"
    r = runner.invoke(app, ["simulate", "--max-jobs", "60", "--policy", "srpt", "--compare",
                            "min-cost", "--html", str(out)])
    assert r.exit_code == 0, r.output
    assert "srpt" in r.stdout and "min-cost" in r.stdout and "JCT h" in r.stdout
    wide = runner.invoke(app, ["simulate", "--max-jobs", "60", "--policy", "srpt", "--wide"])
    assert "mean JCT h" in wide.stdout and "rho max" in wide.stdout
    html = out.read_text()
    for title in ("JCT CDF", "Utilisation over time", "Queue length over time",
                  "Share of delivered device-hours per chip type"):
        assert title in html


def test_quota_option_caps_a_queue() -> None:
    r = runner.invoke(app, ["simulate", "--json", "--max-jobs", "120", "--policy", "fifo",
                            "--quota", "research=1", "--weight", "production=2"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)["results"][0]
    assert m["completed"] + m["unrunnable"] == 120
    big = [u for u in m["unrunnable_reasons"] if "never placed" in u["reason"]]
    assert big  # research jobs with gangs > 1 can never start under the quota


def test_gavel_with_measured_throughputs() -> None:
    r = runner.invoke(app, [
        "simulate", "--json", "--trace", str(data_file("gavel_300jobs.trace")),
        "--throughputs", str(data_file("gavel_throughputs_solo.json")),
        "--policy", "fifo", "--max-jobs", "40"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["accelerators"] == 108 and data["results"][0]["completed"] == 40


def test_synthetic_generated_trace_with_seed() -> None:
    args = ["simulate", "--json", "--trace-format", "synthetic", "--max-jobs", "50",
            "--seed", "5", "--policy", "fifo"]
    a = json.loads(runner.invoke(app, args).stdout)["results"][0]
    b = json.loads(runner.invoke(app, args).stdout)["results"][0]
    assert a["jct_s"] == b["jct_s"] and a["jobs"] == 50


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--policy", "bogus"], "error: --policy: unknown policy 'bogus'"),
        (["--trace-format", "philly"], "--trace: trace format 'philly' needs a trace file"),
        (["--scale-fleet", "0"], "--scale-fleet: must be > 0"),
        (["--quota", "research"], "--quota: expected NAME=number > 0, got 'research'"),
        (["--trace-format", "foo"], "--trace-format: unknown trace format 'foo'"),
    ],
)
def test_bad_options_one_line(args: list[str], needle: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["simulate", *args], capsys)
    assert code == 2 and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_malformed_trace_names_file_row_column(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("timestamp,duration,num_gpus,gpu_time,cluster\n"
                 "2017-10-09 07:01:55,66.0,1,66,a\n2017-10-09 07:01:55,abc,1,66,a\n")
    code, _, err = run_main(["simulate", "--trace", str(p)], capsys)
    assert code == 2
    assert "bad.csv: row 3: duration: 'abc' is not a number" in err
    assert len(err.strip().splitlines()) == 1
    # with --json the same error is JSON on stdout, with its parts separated
    code, out, err = run_main(["simulate", "--trace", str(p), "--json"], capsys)
    assert code == 2 and err == ""
    assert json.loads(out)["error"] == {"file": str(p), "entry": "row 3", "field": "duration",
                                        "problem": "'abc' is not a number"}


def test_measured_throughputs_need_job_types(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["simulate", "--throughputs",
                             str(data_file("gavel_throughputs_solo.json"))], capsys)
    assert code == 2 and "--throughputs: measured throughputs need a trace with job types" in err


def test_sim_report_embeds_in_a_report(tmp_path: Path) -> None:
    from suanli.report.html import Report
    from suanli.report.sim import sim_report
    from suanli.sim.engine import run_simulation
    from suanli.sim.setup import prepare

    setup = prepare(max_jobs=40)
    res = [run_simulation(setup.cluster, setup.trace.jobs, p, setup.provider)
           for p in ("fifo", "fifo-agnostic")]
    rep = Report("combined")
    rep.heading("something else first")
    sim_report(res, rep)
    html = rep.write(tmp_path / "r.html").read_text()
    assert "Scheduling simulation" in html and "fifo-agnostic" in html
    assert "Jobs that could not run" in html


def test_alibaba_and_philly_end_to_end(tmp_path: Path) -> None:
    import itertools
    import shutil

    with data_file("alibaba_pods_gpuspec33_head.csv").open() as fh:
        (tmp_path / "pods.csv").write_text("".join(itertools.islice(fh, 300)))
    shutil.copy(data_file("alibaba_node_list_gpu_node.csv"),
                tmp_path / "x_node_list_gpu_node.csv")
    r = runner.invoke(app, ["simulate", "--json", "--trace", str(tmp_path / "pods.csv"),
                            "--policy", "fifo", "--compare", "max-min-agnostic"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["trace_format"] == "alibaba" and data["accelerators"] == 6212
    assert "alibaba/alibaba_g2" in data["pools"]
    assert any("priced as the reference chip nvidia_t4" in n for n in data["notes"])
    with data_file("philly_head.csv").open() as fh:
        (tmp_path / "philly.csv").write_text("".join(itertools.islice(fh, 400)))
    r = runner.invoke(app, ["simulate", "--json", "--trace", str(tmp_path / "philly.csv"),
                            "--policy", "srpt", "--scale-fleet", "0.05"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)["results"][0]
    assert m["completed"] + m["unrunnable"] == 399
    assert any("nvidia_p100" in n for n in json.loads(r.stdout)["notes"])


def test_gavel_priced_by_the_model() -> None:
    r = runner.invoke(app, ["simulate", "--json", "--trace", str(data_file("gavel_300jobs.trace")),
                            "--policy", "fifo", "--max-jobs", "30"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert any("steps / 10 steps/s" in n for n in data["notes"])
    m = data["results"][0]
    assert m["completed"] + m["unrunnable"] == 30 and m["completed"] > 0
