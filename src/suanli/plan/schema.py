"""Input schema of the capacity planner (pydantic): workloads, candidates, sites, rules.

Units are in field names: ``*_cny`` (CNY), ``*_kw`` (kW), ``*_days``, ``*_weeks``, ``*_ms``,
``*_gbps`` (Gbit/s). Prices are user data: a candidate without a price (inline or in the price
file) is an error naming the chip, never a default.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from suanli.catalog.schema import Confidence, Precision

Objective = Literal["min_tco", "max_throughput", "min_energy", "min_carbon"]
Scenario = Literal["as-today", "no-nvidia", "domestic-only", "custom"]
CudaCompat = Literal["native", "binary", "source", "port"]
SCENARIOS: tuple[str, ...] = ("as-today", "no-nvidia", "domestic-only", "custom")
OBJECTIVES: tuple[str, ...] = ("min_tco", "max_throughput", "min_energy", "min_carbon")


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _WorkloadBase(_Base):
    name: str = Field(min_length=1)
    # Software requirements: accepted stack names (e.g. [CUDA]) and/or the minimum CUDA
    # compatibility of the chip's stack (native > binary > source > port).
    stacks: list[str] | None = None
    cuda_compat: CudaCompat | None = None
    weight: float = Field(default=1.0, gt=0)  # max_throughput: value of serving it
    share: float | None = Field(default=None, gt=0)  # substitute: share of the fleet's time


class TrainWorkload(_WorkloadBase):
    kind: Literal["train"]
    model: str = Field(min_length=1)
    # Either a token budget and a deadline, or a sustained rate (substitution targets).
    tokens: float | None = Field(default=None, gt=0)
    deadline_days: float | None = Field(default=None, gt=0)
    tokens_per_s: float | None = Field(default=None, gt=0)
    seq_len: int = Field(default=4096, ge=128)
    global_batch: int = Field(default=1024, ge=1)
    precision: Precision = Precision.BF16

    @model_validator(mode="after")
    def _target(self) -> TrainWorkload:
        budget = self.tokens is not None and self.deadline_days is not None
        if not budget and self.tokens_per_s is None:
            raise ValueError("tokens: give tokens and deadline_days, or tokens_per_s")
        return self


class InferWorkload(_WorkloadBase):
    kind: Literal["infer"]
    model: str = Field(min_length=1)
    requests_per_s: float = Field(gt=0)
    prompt: int = Field(default=2048, ge=1)
    output: int = Field(default=512, ge=1)
    ttft_ms: float = Field(default=2000.0, gt=0)
    itl_ms: float = Field(default=100.0, gt=0)
    precision: Precision = Precision.BF16


class HpcWorkload(_WorkloadBase):
    kind: Literal["hpc"]
    # Either an FP64 work budget (TFLOP) and a deadline, or a sustained rate (TFLOPS).
    fp64_tflop: float | None = Field(default=None, gt=0)
    deadline_days: float | None = Field(default=None, gt=0)
    fp64_tflops: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _target(self) -> HpcWorkload:
        if (self.fp64_tflop is None or self.deadline_days is None) and self.fp64_tflops is None:
            raise ValueError("fp64_tflop: give fp64_tflop and deadline_days, or fp64_tflops")
        return self


Workload = Annotated[TrainWorkload | InferWorkload | HpcWorkload, Field(discriminator="kind")]


class Candidate(_Base):
    """A node configuration one may buy (or rent)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    chip: str = Field(min_length=1)
    chips_per_node: int = Field(default=8, ge=1, le=64)
    inter_node_gbps: float = Field(default=1600.0, gt=0)
    capex_cny_per_node: float | None = Field(default=None, ge=0)
    rent_cny_per_node_hour: float | None = Field(default=None, ge=0)
    node_power_kw: float | None = Field(default=None, gt=0)  # default chips x TDP + host_kw
    host_kw: float = Field(default=1.5, ge=0)  # CPUs, NICs, fans per node
    nodes_per_rack: float = Field(default=4.0, gt=0)
    lead_time_weeks: float = Field(default=0.0, ge=0)
    max_nodes: int | None = Field(default=None, ge=0)
    sites: list[str] | None = None  # default: every site

    @model_validator(mode="after")
    def _one_price(self) -> Candidate:
        if self.capex_cny_per_node is not None and self.rent_cny_per_node_hour is not None:
            raise ValueError("rent_cny_per_node_hour: give capex or rent, not both")
        return self


class PlanSite(_Base):
    name: str = Field(min_length=1)
    region: str | None = None
    power_cap_kw: float | None = Field(default=None, gt=0)  # facility power incl. PUE
    racks: float | None = Field(default=None, ge=0)  # free racks for new nodes
    pue: float = Field(default=1.3, ge=1.0, le=3.0)
    electricity_cny_kwh: float = Field(default=0.5, ge=0)
    carbon_kg_per_kwh: float = Field(default=0.55, ge=0)


class Constraints(_Base):
    budget_cny: float | None = Field(default=None, gt=0)  # capex + opex over the horizon
    intelligent_share_min: float | None = Field(default=None, ge=0, le=1)
    pue_max: float | None = Field(default=None, ge=1.0)


class PriceEntry(_Base):
    chip: str = Field(min_length=1)
    chips_per_node: int = Field(default=8, ge=1)
    capex_cny_per_node: float | None = Field(default=None, ge=0)
    rent_cny_per_node_hour: float | None = Field(default=None, ge=0)
    # Node configuration used when `plan substitute` builds candidates from the price file.
    inter_node_gbps: float = Field(default=1600.0, gt=0)
    node_power_kw: float | None = Field(default=None, gt=0)
    lead_time_weeks: float = Field(default=0.0, ge=0)
    year: int | None = None
    source: str = Field(min_length=3)
    confidence: Confidence
    note: str | None = None

    @model_validator(mode="after")
    def _some_price(self) -> PriceEntry:
        if self.capex_cny_per_node is None and self.rent_cny_per_node_hour is None:
            raise ValueError("capex_cny_per_node: give capex_cny_per_node or "
                             "rent_cny_per_node_hour")
        return self


class PriceFile(_Base):
    currency: Literal["CNY"] = "CNY"
    prices: list[PriceEntry] = Field(min_length=1)


class PlanInput(_Base):
    name: str = "plan"
    horizon_years: float = Field(default=5.0, gt=0, le=30)
    objective: Objective = "min_tco"
    scenario: Scenario = "as-today"
    export_rule: str | None = None  # rule version id or date; default the rules file's
    allow: list[str] = Field(default_factory=list)  # custom scenario: chips allowed
    deny: list[str] = Field(default_factory=list)  # always excluded from purchase
    # Average accelerator load for energy (fraction of TDP drawn on average).
    load_factor: float = Field(default=0.7, gt=0, le=1)
    # Inference: plan to this fraction of the SLO-feasible throughput (queueing headroom).
    infer_headroom: float = Field(default=0.8, gt=0, le=1)
    prices: str | None = None  # price file, relative to the plan file
    existing_fleet: str | None = None  # fleet YAML; its sites must be listed in sites
    supply_caps: dict[str, int] = Field(default_factory=dict)  # vendor -> accelerators
    constraints: Constraints = Field(default_factory=Constraints)
    workloads: list[Workload] = Field(min_length=1)
    candidates: list[Candidate] = Field(default_factory=list)
    sites: list[PlanSite] = Field(min_length=1)

    @field_validator("workloads", "candidates", "sites")
    @classmethod
    def _unique(cls, items: list[BaseModel]) -> list[BaseModel]:
        names = [getattr(i, "name", None) for i in items]
        dupes = sorted({str(n) for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"names must be unique; repeated: {', '.join(dupes)}")
        return items

    @model_validator(mode="after")
    def _custom(self) -> PlanInput:
        if self.scenario == "custom" and not self.allow:
            raise ValueError("allow: the custom scenario needs a list of allowed chips")
        if self.objective == "max_throughput" and self.constraints.budget_cny is None:
            raise ValueError("constraints.budget_cny: max_throughput needs a budget")
        return self
