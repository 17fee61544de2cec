"""Issue 6: hostile input never gives a traceback or a silently wrong number, and a newcomer's
first commands (--version, -h, bare `suanli`, schema, examples) work. One test per item."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cli_support import run, run_error
from suanli.cli import app, main
from suanli.commands import common
from suanli.commands.common import JsonOpt, layout_text

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
runner = CliRunner()
TRAIN = ("estimate", "train", "--model", "llama3-70b", "--chip", "H800", "--devices", "64")
INFER = ("estimate", "infer", "--model", "llama2-7b", "--chip", "A100", "--devices", "8")


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def json_error(*args: str) -> dict[str, Any]:
    """Run with --json: exit 2 and a JSON error object on stdout (nothing else)."""
    r = invoke(*args, "--json")
    assert r.exit_code == 2, (r.output, r.exception)
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit)
    err = json.loads(r.stdout)["error"]
    assert set(err) == {"file", "entry", "field", "problem"}
    return err  # type: ignore[no-any-return]


# -- §1 bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    (*TRAIN, "--precision", "fp3"), (*TRAIN, "--precision", "foo"),
    (*INFER, "--precision", "fp3"), (*INFER, "--kv-precision", "foo"),
])
def test_unknown_precision_is_one_error_line(capsys: pytest.CaptureFixture[str],
                                             args: tuple[str, ...]) -> None:
    line = run_error(capsys, *args)
    flag = "--kv-precision" if "--kv-precision" in args else "--precision"
    assert f"{flag}: unknown precision" in line and "valid: fp64" in line and "fp4" in line


def test_fp4_on_a_chip_without_a_published_fp4_peak_is_one_error_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    """FP4 is a known (optional) precision: a chip whose entry lists no FP4 figure refuses."""
    line = run_error(capsys, *TRAIN, "--precision", "fp4")
    assert "cannot run" in line and "FP4 peak is not published" in line


def test_precision_spellings_are_shared_with_chips_list() -> None:
    a = run(*TRAIN, "--precision", "BF16", "--json")
    b = run(*TRAIN, "--precision", "bf16", "--json")
    assert json.loads(a)["tokens_per_s"] == json.loads(b)["tokens_per_s"]


def test_unwritable_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--html: cannot create files in '/proc'" in run_error(capsys, "meter", "--html",
                                                                  "/proc/x.html")
    line = run_error(capsys, "simulate", "--max-jobs", "5", "--html", "/proc/x.html")
    assert line.startswith("error: --html: cannot create files in '/proc'")
    afile = tmp_path / "a-file"
    afile.write_text("x")
    assert "--out: " in run_error(capsys, "demo", "--out", str(afile))
    assert "is a directory" in run_error(capsys, "meter", "--html", str(tmp_path))
    assert not any(p.name.startswith(".suanli-write-test") for p in tmp_path.iterdir())


def test_report_write_error_is_a_suanli_error(tmp_path: Path) -> None:
    from suanli.errors import SuanliError
    from suanli.report.html import Report

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SuanliError, match="cannot write the report"):
        Report("t").write(blocker / "sub" / "r.html")


def test_hpc_problem_size_range_and_memory(capsys: pytest.CaptureFixture[str]) -> None:
    hpc = ("estimate", "hpc", "--chip", "H800", "--devices", "64")
    assert "--problem-size: must be >= 1" in run_error(capsys, *hpc, "--problem-size", "-10")
    line = run_error(capsys, *hpc, "--problem-size", "1e11")
    assert "does not fit" in line and "N=100,000,000,000" in line
    ok = json.loads(run(*hpc, "--problem-size", "1e5", "--json"))
    assert ok["problem_size"] == 100_000 and ok["rate"] > 0
    stream = ("estimate", "hpc", "--chip", "H800", "--devices", "1", "--kernel", "stream")
    assert "does not fit" in run_error(capsys, *stream, "--problem-size", "1e13")


@pytest.mark.parametrize(("args", "flag"), [
    ((*TRAIN, "--tokens", "nan"), "--tokens"), ((*TRAIN, "--tokens", "inf"), "--tokens"),
    ((*TRAIN, "--tokens", "-1e12"), "--tokens"),
    (("simulate", "--round", "nan"), "--round"), (("simulate", "--load", "nan"), "--load"),
    (("simulate", "--load", "-inf"), "--load"),
    ((*TRAIN, "--electricity-cny-kwh", "-1"), "--electricity-cny-kwh"),
    ((*TRAIN, "--price-cny-per-hour", "-1"), "--price-cny-per-hour"),
    ((*TRAIN, "--pue", "0.5"), "--pue"), ((*INFER, "--eff-memory", "nan"), "--eff-memory"),
    (("meter", "--utilisation", "inf"), "--utilisation"),
    (("meter", "--idle-power", "2"), "--idle-power"),
    ((*INFER, "--tp", "0"), "--tp"), ((*TRAIN, "--search", "--top", "-3"), "--top"),
    ((*TRAIN, "--devices", "10000000"), "--devices"),
])
def test_every_float_and_count_is_finite_and_in_range(args: tuple[str, ...], flag: str) -> None:
    err = json_error(*args)  # --json: the error is valid JSON (no bare NaN), on stdout
    assert err["field"] == flag, err
    assert "must be" in err["problem"]


def test_idle_power_error_names_the_flag_the_user_typed(
        capsys: pytest.CaptureFixture[str]) -> None:
    line = run_error(capsys, "meter", "--idle-power", "2")
    assert "--idle-power:" in line and "--idle-power-fraction" not in line
    assert "divisible by tp (0)" not in run_error(capsys, *INFER, "--tp", "0")


def test_json_output_never_contains_nan() -> None:
    assert common.to_json({"a": float("nan"), "b": [float("inf"), 1.0]}) == (
        '{\n  "a": null,\n  "b": [\n    null,\n    1.0\n  ]\n}')


@pytest.mark.parametrize(("patch", "field", "needle"), [
    ({"nodes": True}, "nodes", "expected a whole number, got true"),
    ({"nodes": 10**30}, "nodes", "must be <= 100000"),
    ({"chips_per_node": 8.5}, "chips_per_node", "expected a whole number, got 8.5"),
    ({"inter_node_latency_us": float("inf")}, "inter_node_latency_us", "finite"),
    ({"inter_node_gbps": True}, "inter_node_gbps", "expected a number"),
])
def test_fleet_counts_are_strict_and_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             patch: dict[str, Any], field: str,
                                             needle: str) -> None:
    doc = yaml.safe_load((EXAMPLES / "fleet.yaml").read_text(encoding="utf-8"))
    doc["sites"][0]["node_groups"][0].update(patch)
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    line = run_error(capsys, "meter", str(path))
    assert "fleet.yaml" in line and f"{field}:" in line and needle in line, line


def test_fleet_site_floats_are_finite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (EXAMPLES / "fleet.yaml").read_text(encoding="utf-8")
    path = tmp_path / "fleet.yaml"
    path.write_text(text.replace("carbon_kg_per_kwh: 0.5683", "carbon_kg_per_kwh: .inf"),
                    encoding="utf-8")
    assert "carbon_kg_per_kwh" in run_error(capsys, "meter", str(path))
    path.write_text(text.replace("electricity_price_cny_kwh: 0.45",
                                 "electricity_price_cny_kwh: -1"), encoding="utf-8")
    assert "electricity_price_cny_kwh" in run_error(capsys, "meter", str(path))


def test_scale_fleet_cannot_overflow_a_group(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "fleet.yaml"
    text = (EXAMPLES / "fleet.yaml").read_text(encoding="utf-8")
    path.write_text(text.replace("nodes: 16 ", "nodes: 5000 "), encoding="utf-8")
    line = run_error(capsys, "simulate", "--fleet", str(path), "--scale-fleet", "1000",
                     "--max-jobs", "5")
    assert "--scale-fleet" in line and "at most 100,000" in line


def _trace(tmp_path: Path, col: str, value: str) -> Path:
    lines = (EXAMPLES / "jobs.csv").read_text(encoding="utf-8").splitlines()
    head = lines[0].split(",")
    row = lines[1].split(",")
    row[head.index(col)] = value
    path = tmp_path / "jobs.csv"
    path.write_text("\n".join([lines[0], lines[2], ",".join(row)]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("col", "value", "needle"), [
    ("allowed_chips", "H9000", "unknown chip 'H9000'"),
    ("allowed_sites", "mars", "unknown site 'mars'"),
    ("gpu_fraction", "0", "must be > 0"),
    ("gpu_fraction", "1.5", "must be <= 1"),
    ("duration_ref_s", "1e308", "must be <= "),
    ("gang", "2.5", "whole number"),
])
def test_trace_rows_name_row_and_column(tmp_path: Path, col: str, value: str,
                                        needle: str) -> None:
    path = _trace(tmp_path, col, value)
    err = json_error("simulate", "--fleet", str(EXAMPLES / "fleet.yaml"), "--trace", str(path))
    assert err["entry"] == "row 3" and err["field"] == col and needle in err["problem"], err
    assert err["file"].endswith("jobs.csv")


def test_philly_duration_is_bounded(tmp_path: Path) -> None:
    p = tmp_path / "philly.csv"
    p.write_text("timestamp,duration,num_gpus,gpu_time,cluster\n"
                 "2017-10-09 07:01:55,1e308,1,66,a\n", encoding="utf-8")
    err = json_error("simulate", "--trace", str(p))
    assert (err["entry"], err["field"]) == ("row 2", "duration") and "<=" in err["problem"]


def test_catalogued_chip_absent_from_the_fleet_is_not_an_input_error(tmp_path: Path) -> None:
    path = _trace(tmp_path, "allowed_chips", "nvidia_b200")  # real chip, not in this fleet
    d = json.loads(run("simulate", "--fleet", str(EXAMPLES / "fleet.yaml"), "--trace", str(path),
                       "--policy", "fifo", "--json"))
    assert d["results"][0]["unrunnable"] == 1


@pytest.mark.parametrize(("args", "field", "needle"), [
    (("meter", "--class", "nope=general"), "--class", "'nope' is not a catalogued chip"),
    (("meter", "--class", "nvidia_b200=general"), "--class", "is not in this fleet"),
    (("simulate", "--max-jobs", "5", "--quota", "nope=5"), "--quota/--weight", "'nope'"),
    (("simulate", "--max-jobs", "5", "--weight", "nope=2"), "--quota/--weight", "'nope'"),
    (("simulate", "--max-jobs", "5", "--quota", "research=nan"), "--quota", "NAME=number"),
])
def test_names_that_would_be_silently_ignored(args: tuple[str, ...], field: str,
                                              needle: str) -> None:
    err = json_error(*args)
    assert err["field"] == field and needle in err["problem"], err


def test_class_override_by_alias_still_applies() -> None:
    d = json.loads(run("meter", "--class", "H20=supercomputing", "--json"))
    text = json.dumps(d)
    assert "supercomputing" in text


# -- §2 the newcomer's experience ---------------------------------------------------------


def test_version_help_and_bare_command(capsys: pytest.CaptureFixture[str]) -> None:
    from suanli import __version__

    for args in (["--version"], ["-V"]):
        assert invoke(*args).stdout.strip() == __version__
    for args in (["-h"], ["--help"], [], ["chips"], ["estimate"], ["chips", "list", "-h"]):
        r = invoke(*args)
        assert r.exit_code == 0 and "Usage" in r.output, (args, r.output)
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 0 and "Commands" in capsys.readouterr().out


def test_shell_completion_is_offered() -> None:
    assert "--install-completion" in invoke("--help").output
    r = invoke("--show-completion", "bash")
    assert r.exit_code == 0 and "_SUANLI_COMPLETE" in r.stdout


def test_usage_errors_are_json_with_json() -> None:
    err = json_error("chips", "list", "--no-such-flag")
    assert "No such option" in err["problem"]
    err = json_error(*TRAIN, "--devices", "many")
    assert err["field"] == "--devices"


def test_json_error_mechanism_covers_commands_added_later() -> None:
    """A command registered after start-up (another helper's) gets the same error handling."""
    from suanli.errors import SuanliError

    @app.command("zz-test-only")
    def _later(as_json: JsonOpt = False) -> None:
        raise SuanliError("broken", file="f.yaml", where="entry 3", field="x")

    try:
        r = invoke("zz-test-only", "--json")
        assert r.exit_code == 2
        assert json.loads(r.stdout) == {"error": {"file": "f.yaml", "entry": "entry 3",
                                                  "field": "x", "problem": "broken"}}
        r = invoke("zz-test-only")
        assert r.exit_code == 2 and r.stdout == ""
    finally:
        app.registered_commands.pop()


def test_help_and_chips_list_import_no_heavy_module() -> None:
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom suanli.cli import app\n"
            "for a in (['--help'], ['chips', 'list'], ['--version']):\n"
            "    assert CliRunner().invoke(app, a).exit_code == 0\n"
            "print(sorted(m for m in ('scipy', 'plotly', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("args", [
    ("chips", "list"), ("chips", "list", "--sort", "fp16_per_watt"),
    ("simulate", "--max-jobs", "30", "--compare", "fifo-agnostic"),
    (*TRAIN, "--chip", "910B"), (*INFER, "--chip", "910B"),
    ("chips", "compare", "H800", "910B", "MLU370"),
])
def test_default_tables_fit_100_columns(monkeypatch: pytest.MonkeyPatch,
                                        args: tuple[str, ...]) -> None:
    monkeypatch.setattr(common.console, "width", 100)
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    for line in r.stdout.splitlines():
        assert len(line.rstrip()) <= 100, line
        assert "…" not in line, line


def test_wide_and_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common.console, "width", 100)
    wide = invoke("chips", "list", "--wide").stdout
    assert "stack" in wide and "vendor" in wide and max(map(len, wide.splitlines())) > 100
    csv_text = invoke("chips", "list", "--format", "csv").stdout.splitlines()
    assert csv_text[0].startswith("id,name,vendor,year,memory") and len(csv_text) > 40
    as_json = json.loads(invoke("chips", "list", "--format", "json").stdout)
    assert len(as_json) == len(csv_text) - 1
    sim = invoke("simulate", "--max-jobs", "20", "--policy", "fifo", "--format", "csv").stdout
    assert sim.splitlines()[0].startswith("policy,done,unrunnable")
    assert json_error("chips", "list", "--format", "xml")["field"] == "--format"


def test_validate_formats() -> None:
    data = str(ROOT / "tests" / "data" / "validation")
    rows = invoke("validate", "--data", data, "--format", "csv").stdout.splitlines()
    assert rows[0] == "file,line,label,chip,predicted,measured,error_pct,problem"
    assert len(rows) == 6 and all(r.startswith("mpt_a100_training_head.csv,") for r in rows[1:])
    as_json = json.loads(invoke("validate", "--data", data, "--format", "json").stdout)
    assert as_json["summary"]["rows"] == 5


def test_layout_shows_every_dimension_not_1() -> None:
    lay = {"tp": 2, "pp": 1, "dp": 256, "cp": 2, "ep": 1, "micro_batch": 1, "grad_accum": 2,
           "recompute": "none", "zero": 3}
    assert layout_text(lay) == "tp2 cp2 dp256 mb1x2 none ZeRO-3"
    assert layout_text({**lay, "tp": 1, "cp": 1, "dp": 1}, details=False) == "1 device"


@pytest.mark.parametrize("kind", ["fleet", "chip", "model", "trace"])
def test_schema_command(kind: str) -> None:
    schema = json.loads(run("schema", kind))
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema.get("properties") or schema.get("$defs")
    if kind == "fleet":
        assert schema["properties"]["sites"]["type"] == "array"
        group = schema["$defs"]["NodeGroup"]["properties"]
        assert group["nodes"]["maximum"] == 100_000 and group["nodes"]["type"] == "integer"
    if kind == "trace":
        head = (EXAMPLES / "jobs.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
        assert set(head) == set(schema["properties"])


def test_examples_validate_against_their_schemas() -> None:
    """What an editor would check with `suanli schema ...`: the examples pass, typos fail."""
    import csv

    import jsonschema

    def schema(kind: str) -> dict[str, Any]:
        return json.loads(run("schema", kind))  # type: ignore[no-any-return]

    def load(name: str) -> Any:
        return yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))

    for kind, name in (("fleet", "fleet.yaml"), ("chip", "chip.yaml"), ("model", "model.yaml")):
        jsonschema.validate(load(name), schema(kind))
    bad = load("fleet.yaml")
    bad["sites"][0]["node_groups"][0]["nodez"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema("fleet"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"model": {"base": "llama3-70b", "layerz": 3}}, schema("model"))
    trace = schema("trace")
    kinds = {k: v.get("type") or [t.get("type") for t in v.get("anyOf", [])]
             for k, v in trace["properties"].items()}
    with (EXAMPLES / "jobs.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            doc: dict[str, Any] = {}
            for k, v in row.items():
                if v == "":
                    continue
                t = kinds[k]
                doc[k] = (int(v) if "integer" in t else float(v) if "number" in t else v)
            jsonschema.validate(doc, trace)


def test_examples_load_and_run() -> None:
    fleet = json.loads(run("meter", str(EXAMPLES / "fleet.yaml"), "--json"))
    assert fleet["total"]["accelerators"] == (16 + 4 + 8) * 8
    chip = json.loads(run("chips", "show", "A100-300W", "--catalog", str(EXAMPLES / "chip.yaml"),
                          "--json"))
    assert chip["chip"]["tdp_w"]["value"] == 300
    model = json.loads(run("estimate", "train", "--model", str(EXAMPLES / "model.yaml"),
                           "--chip", "H800", "--devices", "64", "--json"))
    assert model["tokens_per_s"] > 0
    sim = json.loads(run("simulate", "--fleet", str(EXAMPLES / "fleet.yaml"), "--trace",
                         str(EXAMPLES / "jobs.csv"), "--policy", "fifo", "--json"))
    assert sim["jobs"] == 5 and sim["results"][0]["completed"] == 5


def test_readme_and_docs_state_true_figures() -> None:
    """Figures the docs quote that the code can check: catalogue size, trace formats."""
    import re

    from suanli.catalog.loader import load_catalog
    from suanli.sim.traces import FORMATS

    n = len(list(load_catalog()))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    texts = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md")}
    texts["README.md"] = readme
    claims = [(name, int(m.group(1))) for name, text in texts.items()
              for m in re.finditer(r"(?:catalogue of )?(\d+) (?:accelerators from \d+ vendors|"
                                   r"chips catalogued|accelerators at\s+every precision|"
                                   r"accelerators in `src)", text)]
    assert claims and all(k == n for _, k in claims), (n, claims)
    listed = re.search(r"Traces \(`--trace-format`, auto-detected\): (.*?)See", readme, re.S)
    assert listed is not None
    for name in re.findall(r"`(\w+)`", listed.group(1)):
        assert name in FORMATS or name == "suanli", name


def test_trace_format_suanli_names_the_own_csv() -> None:
    d = json.loads(run("simulate", "--fleet", str(EXAMPLES / "fleet.yaml"), "--trace",
                       str(EXAMPLES / "jobs.csv"), "--trace-format", "suanli", "--json",
                       "--policy", "fifo"))
    assert d["jobs"] == 5
