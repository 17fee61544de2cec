"""`suanli schema fleet|chip|model|trace`: JSON Schema of suanli's input files.

The schemas come from the same pydantic models (and dataclass) that validate the files, so an
editor using them (e.g. the YAML language server: ``# yaml-language-server: $schema=fleet.json``)
checks exactly what suanli checks, minus the cross-file rules (a chip name must be in the
catalogue, a site in the fleet).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from suanli.commands.common import print_json
from suanli.errors import SuanliError

KINDS = ("fleet", "chip", "model", "trace")


def _fleet() -> dict[str, Any]:
    from suanli.fleet.schema import Fleet

    return Fleet.model_json_schema()


def _chip() -> dict[str, Any]:
    from pydantic import BaseModel, ConfigDict

    from suanli.catalog.schema import Chip

    class CatalogueFile(BaseModel):
        """A catalogue YAML file: a ``chips:`` list (see docs/catalogue.md)."""

        model_config = ConfigDict(extra="forbid", title="suanli catalogue file")
        chips: list[Chip]

    return CatalogueFile.model_json_schema()


def _model() -> dict[str, Any]:
    from pydantic import TypeAdapter

    from suanli.perf.models import ModelShape

    out = TypeAdapter(ModelShape).json_schema()
    props = out.setdefault("properties", {})
    props["base"] = {"type": "string",
                     "description": "Start from this preset (e.g. llama3-70b) and override fields."}
    out["required"] = []  # with `base:` every field is optional; without it see docs/perf-model.md
    out["title"] = "suanli model shape"
    return out


def _trace() -> dict[str, Any]:
    from pydantic import BaseModel, ConfigDict, Field

    class JobRow(BaseModel):
        """One row of suanli's own job trace CSV (docs/scheduling.md, examples/jobs.csv).

        Lists (allowed_chips, allowed_sites) are '|'-separated in the CSV.
        """

        model_config = ConfigDict(extra="forbid", title="suanli trace row (CSV columns)")
        id: str = Field(description="Job id, unique in the file.")
        arrival_s: float = Field(ge=0, le=3.2e8, description="Submission time, seconds.")
        gang: int = Field(ge=1, le=1_000_000, description="Devices the job needs at once.")
        work: float | None = Field(None, gt=0, description="Total work in the workload's "
                                   "units: tokens (train), output tokens (infer), flop or "
                                   "bytes (hpc), steps (measured matrix). Give work or "
                                   "duration_ref_s.")
        duration_ref_s: float | None = Field(None, gt=0, le=3.2e8, description="Run time on "
                                             "the reference chip, seconds (<= 10 years).")
        kind: Literal["train", "infer", "hpc", ""] = Field(description="Workload kind.")
        precision: str = Field(description="bf16, fp16, fp8, fp32, fp64, ... (empty = bf16).")
        model: str | None = Field(None, description="Model preset for train/infer.")
        seq_len: int | None = Field(None, ge=1)
        batch: int | None = Field(None, ge=1)
        hpc_kernel: Literal["hpl", "stream", ""] | None = None
        queue: str | None = Field(None, description="Queue (tenant) name; default 'default'.")
        mem_gb: float | None = Field(None, ge=0, description="Memory per device, GB.")
        cuda_only: Literal["0", "1", "true", "false", "yes", "no", ""] | None = None
        fp64: Literal["0", "1", "true", "false", "yes", "no", ""] | None = None
        allowed_chips: str | None = Field(None, description="Chip ids/names, '|'-separated; "
                                          "each must be in the catalogue or the fleet.")
        allowed_sites: str | None = Field(None, description="Sites or regions of the fleet, "
                                          "'|'-separated.")
        priority: float | None = Field(None, gt=0)
        deadline_s: float | None = Field(None, ge=0)
        data_gb: float | None = Field(None, ge=0, description="Input data size, GB.")
        home_site: str | None = Field(None, description="Site that holds the data.")
        gpu_fraction: float | None = Field(None, gt=0, le=1, description="Share of one device "
                                           "(1 = whole device).")
        job_type: str | None = Field(None, description="Key of a measured throughput matrix.")

    return JobRow.model_json_schema()


BUILDERS = {"fleet": _fleet, "chip": _chip, "model": _model, "trace": _trace}


def schema_command(
    kind: Annotated[str, typer.Argument(help="fleet | chip | model | trace", show_default=False)],
) -> None:
    """Print the JSON Schema of an input file (fleet YAML, catalogue YAML, model YAML, trace
    CSV row) so editors can validate files as you type."""
    k = kind.strip().lower()
    if k not in BUILDERS:
        raise SuanliError(f"unknown schema '{kind}'; valid: {', '.join(KINDS)}", field="KIND")
    out = BUILDERS[k]()
    out.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
    print_json(out)


def register(app: typer.Typer) -> None:
    """Attach ``suanli schema`` to the root app."""
    app.command("schema")(schema_command)
