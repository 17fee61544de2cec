"""port-check: will this code run on that chip's software stack?

Scanners read a project (Python via ``ast``, C++/CUDA sources, requirement files, shell launch
scripts) and emit findings (file:line, rule id, evidence). Sourced rules (``port/data/*.yaml``)
say what each finding means on each target stack; :func:`analyze` turns that into one verdict
per stack: runs unchanged, needs a shim, needs porting, blocked or unknown.
"""

from suanli.port.analyze import Report, StackVerdict, allowed_stacks, analyze
from suanli.port.findings import FileProblem, Finding
from suanli.port.rules import OUTCOMES, RuleBook, load_rules

__all__ = [
    "OUTCOMES",
    "FileProblem",
    "Finding",
    "Report",
    "RuleBook",
    "StackVerdict",
    "allowed_stacks",
    "analyze",
    "load_rules",
]
