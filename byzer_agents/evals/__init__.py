"""Score models on BFCL-format function-calling data with BFCL's AST rules: ``load_cases`` reads
the data (a shipped BFCL V4 sample, or any BFCL-format directory), ``run_bfcl`` asks a model
through the framework's loop, ``check_calls`` scores calls, ``EvalReport`` holds the results.

The command line is ``byzer-agents eval bfcl --model NAME``.
"""

from byzer_agents.evals.checker import Verdict, check_calls, normalize_string
from byzer_agents.evals.dataset import (
    BFCL_DATA_DIR,
    CATEGORIES,
    SHIPPED_CATEGORIES,
    BfclCase,
    load_cases,
)
from byzer_agents.evals.results import CaseRecord, CategoryScore, EvalReport, read_records
from byzer_agents.evals.runner import DEFAULT_LLM_CONFIG, run_bfcl, run_case

__all__ = [
    "BFCL_DATA_DIR",
    "CATEGORIES",
    "DEFAULT_LLM_CONFIG",
    "SHIPPED_CATEGORIES",
    "BfclCase",
    "CaseRecord",
    "CategoryScore",
    "EvalReport",
    "Verdict",
    "check_calls",
    "load_cases",
    "normalize_string",
    "read_records",
    "run_bfcl",
    "run_case",
]
