"""`suanli demo` (the main job) runs end to end on bundled data and writes its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from suanli.catalog.loader import ENV_VAR
from suanli.cli import app
from suanli.commands.common import layout_text
from suanli.commands.demo import SIM_POLICIES


@pytest.fixture(autouse=True)
def _no_env_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_demo_json_and_report(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert data["report"] == str(tmp_path / "report.html")
    # every chip type of the demo fleet gets a training, inference and HPC row
    chips = {r["chip_id"] for r in data["train"]}
    assert chips == {r["chip_id"] for r in data["infer"]} == {r["chip_id"] for r in data["hpc"]}
    assert len(chips) >= 5
    ok = [r for r in data["train"] if r["ok"]]
    assert ok and all(0 < r["mfu"] < 1 and r["tokens_per_s"] > 0 for r in ok)
    # the report's layout column shows every parallel dimension that is not 1 (it hid cp)
    for r in ok:
        shown = layout_text(r["layout"])
        assert shown in html, shown
        for dim in ("tp", "cp", "pp", "ep", "dp"):
            assert (f"{dim}{r['layout'][dim]}" in shown) == (r["layout"][dim] != 1), shown
    assert any(r["layout"]["cp"] > 1 for r in ok)  # the case that used to be hidden
    # a chip without FP64 is reported as unable to run the HPL job, not given a number
    no_fp64 = [r for r in data["hpc"] if not r["ok"]]
    assert no_fp64 and all("FP64" in r["reason"] or "unknown" in r["reason"] for r in no_fp64)
    # the simulation ran every policy on every job of the bundled trace
    assert [m["policy"] for m in data["simulate"]] == list(SIM_POLICIES)
    for m in data["simulate"]:
        assert m["completed"] + m["unrunnable"] == m["jobs"] > 0
    # the report holds each section and embeds plotly once, so it works offline
    for heading in ("Compute metering", "Training", "Serving", "HPC", "Scheduling simulation"):
        assert heading in html
    assert html.count("<script type=\"text/javascript\">/**") <= 1
    assert "plotly" in html.lower()
    assert len(data["meter"]["sites"]) >= 3  # the demo fleet spans several sites


def test_demo_bad_catalog_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("chips: [ {id: x", encoding="utf-8")
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--catalog", str(bad)])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
