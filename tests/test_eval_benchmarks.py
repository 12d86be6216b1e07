"""epx.benchmarks: the registry, local files, the hub field maps, and errors that say where."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from epx.benchmarks import (
    REGISTRY,
    Benchmark,
    load_benchmark,
    parse_bench_list,
    register,
    resolve_data_dir,
)
from epx.errors import DataError
from epx.recipe import ArithmeticTask

DATA_DIR = Path(
    os.environ.get("EPX_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
)
SIZES = {  # ../shared/benchmarks, see PAPER.md
    "aime24": 30,
    "aime25": 30,
    "amc": 83,
    "amc23": 40,
    "math500": 500,
    "minerva": 272,
    "olympiadbench": 674,
}


def test_registry_holds_the_paper_benchmarks_with_hub_ids():
    assert set(SIZES) <= set(REGISTRY)
    for name, benchmark in REGISTRY.items():
        assert benchmark.file_name == f"{name}.jsonl"
        assert "/" in benchmark.hub_id  # owner/name on the hub


@pytest.mark.parametrize(("name", "size"), SIZES.items())
def test_local_benchmarks_load_with_their_sizes(name, size):
    bench = load_benchmark(name, DATA_DIR)
    assert len(bench.problems) == size
    assert len({p.id for p in bench.problems}) == size  # ids are unique
    assert all(p.problem and p.answer for p in bench.problems)
    assert bench.source == str(DATA_DIR / f"{name}.jsonl")


def test_data_dir_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("EPX_DATA_DIR", str(DATA_DIR))
    assert resolve_data_dir(None) == DATA_DIR
    assert load_benchmark("aime24").source.startswith(str(DATA_DIR))
    monkeypatch.delenv("EPX_DATA_DIR")
    assert resolve_data_dir(None) is None


def test_unknown_benchmark_lists_known_and_nearest():
    with pytest.raises(DataError) as error:
        load_benchmark("aime2", DATA_DIR)
    message = str(error.value)
    assert "unknown benchmark 'aime2'" in message
    assert "aime24, aime25" in message and "did you mean aime24 or aime25?" in message
    assert "\n" not in message


def test_nearest_name_for_a_typo():
    with pytest.raises(DataError, match=r"did you mean math500\?$"):
        load_benchmark("math-500", DATA_DIR)
    with pytest.raises(DataError) as error:
        load_benchmark("gsm8k", DATA_DIR)
    assert "did you mean" not in str(error.value)  # nothing close: no hint


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match=r"benchmark file missing: .*aime24\.jsonl"):
        load_benchmark("aime24", tmp_path)


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"problem": "1+1?", "answer": "2"}\n\n{"problem": "2+2?", "answer": \n')
    with pytest.raises(DataError, match=r"mine\.jsonl:3: malformed JSON line"):
        load_benchmark(str(path))


def test_missing_field_names_file_and_line(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?"}\n')
    with pytest.raises(DataError, match=r"mine\.jsonl:2: missing field 'answer'"):
        load_benchmark(str(path))


def test_a_jsonl_path_is_a_benchmark_named_after_the_file(tmp_path):
    path = tmp_path / "sums.jsonl"
    path.write_text(
        '{"problem": "1+1?", "answer": 2}\n{"id": "b", "problem": "x", "answer": "y"}\n'
    )
    bench = load_benchmark(str(path))
    assert bench.name == "sums"
    assert [(p.id, p.answer) for p in bench.problems] == [("sums-0", "2"), ("b", "y")]


def test_hub_rows_are_mapped_through_the_field_map(monkeypatch):
    from datasets import Dataset

    monkeypatch.delenv("EPX_DATA_DIR", raising=False)
    calls = []

    def loader(hub_id, config, split):
        calls.append((hub_id, config, split))
        rows = [{"id": 7, "question": "Q?", "final_answer": ["$\\frac{1}{2}$"]}]
        return Dataset.from_list(rows)

    bench = load_benchmark("olympiadbench", data_dir=None, loader=loader)
    assert calls == [("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train")]
    assert bench.problems[0].id == "7"
    assert bench.problems[0].answer == "\\frac{1}{2}"  # first of the list, $ stripped
    assert bench.source == "hub:Hothan/OlympiadBench"


def test_hub_failure_is_one_line_pointing_at_data_dir(monkeypatch):
    monkeypatch.delenv("EPX_DATA_DIR", raising=False)

    def loader(*args, **kwargs):
        raise ConnectionError("no route to host\nmore detail")

    with pytest.raises(DataError, match="pass --data-dir") as error:
        load_benchmark("aime24", data_dir=None, loader=loader)
    assert "\n" not in str(error.value)


def test_fingerprint_changes_with_the_data(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text('{"problem": "1+1?", "answer": "2"}\n')
    before = load_benchmark(str(path)).fingerprint
    path.write_text('{"problem": "1+1?", "answer": "3"}\n')
    assert load_benchmark(str(path)).fingerprint != before


def test_bench_list_parsing():
    assert parse_bench_list("aime24, math500,aime24") == ["aime24", "math500"]
    with pytest.raises(DataError):
        parse_bench_list(" , ")


def test_registering_a_name_twice_fails():
    with pytest.raises(ValueError, match="twice"):
        register(Benchmark("aime24", "x/y", "test", "problem", "answer"))


def test_arithmetic_is_the_builtin_task_held_out_split():
    bench = load_benchmark("arithmetic")
    assert bench.source == "builtin:arithmetic" and len(bench.problems) == 200  # default task
    first = bench.problems[0]
    numbers = [int(n) for n in first.problem.removeprefix("What is ").rstrip("?").split(" + ")]
    assert first.answer == str(sum(numbers))
    assert load_benchmark("arithmetic").fingerprint == bench.fingerprint  # the same every time
    small = load_benchmark("arithmetic", task=ArithmeticTask(digits=[1]))
    assert 0 < len(small.problems) < 100 and small.fingerprint != bench.fingerprint
    with pytest.raises(DataError, match="did you mean arithmetic"):
        load_benchmark("arithmetc")
