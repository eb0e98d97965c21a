"""Loading BFCL-format data: the sample shipped in the package (and in its wheel), a directory of
the user's, and what is refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from byzer_agents.evals import BFCL_DATA_DIR, SHIPPED_CATEGORIES, load_cases
from byzer_agents.evals.dataset import check_kind

SIZES = {
    "simple_python": 400,
    "multiple": 200,
    "parallel": 200,
    "parallel_multiple": 200,
    "irrelevance": 240,
}


@pytest.mark.parametrize("category", SHIPPED_CATEGORIES)
def test_every_shipped_category_loads_whole_with_its_answers(category: str) -> None:
    cases = load_cases(category)
    assert len(cases) == SIZES[category]
    assert len({case.id for case in cases}) == len(cases)
    for case in cases:
        assert case.category == category and case.functions
        assert [message["role"] for message in case.messages] == ["user"]
        assert bool(case.ground_truth) == (category != "irrelevance")


def test_categories_are_scored_as_bfcl_names_them() -> None:
    kinds = [check_kind(category) for category in SHIPPED_CATEGORIES]
    assert kinds == ["simple", "multiple", "parallel", "parallel", "irrelevance"]
    assert check_kind("live_parallel_multiple") == "parallel"


def test_a_limit_takes_cases_evenly_spaced_and_the_same_every_time() -> None:
    picked = [case.id for case in load_cases("simple_python", limit=4)]
    assert picked == [
        "simple_python_0",
        "simple_python_100",
        "simple_python_200",
        "simple_python_300",
    ]
    assert [case.id for case in load_cases("simple_python", limit=4)] == picked
    assert len(load_cases("multiple", limit=1000)) == 200


def test_a_data_dir_of_the_users_is_read_the_same_way(tmp_path: Path) -> None:
    (tmp_path / "possible_answer").mkdir()
    for name in ("BFCL_v4_parallel.json", "possible_answer/BFCL_v4_parallel.json"):
        lines = (BFCL_DATA_DIR / name).read_text().splitlines()[:3]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    cases = load_cases("parallel", data_dir=tmp_path)
    assert [case.id for case in cases] == ["parallel_0", "parallel_1", "parallel_2"]
    assert cases == load_cases("parallel")[:3]


def test_bad_categories_limits_and_directories_are_refused_with_the_value_named(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match="unknown BFCL category 'simple_java'"):
        load_cases("simple_java")
    with pytest.raises(ValueError, match="limit must be 1 or more"):
        load_cases("multiple", limit=0)
    with pytest.raises(FileNotFoundError, match=f"no BFCL_v4_live_simple.json in {tmp_path}"):
        load_cases("live_simple", data_dir=tmp_path)
    shutil.copy(BFCL_DATA_DIR / "BFCL_v4_multiple.json", tmp_path)
    with pytest.raises(FileNotFoundError, match="multiple needs its possible answers"):
        load_cases("multiple", data_dir=tmp_path)


def test_the_wheel_carries_the_data_and_its_licence(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=root,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = "byzer_agents/evals/data/bfcl/"
    assert f"{data}LICENSE" in names
    for category in SHIPPED_CATEGORIES:
        assert f"{data}BFCL_v4_{category}.json" in names
        if category != "irrelevance":
            assert f"{data}possible_answer/BFCL_v4_{category}.json" in names
