"""RealToxicityPrompts sample: packaged files, validation, nested seeded subsets."""

from __future__ import annotations

import doctest
import json
from importlib import resources

import pytest

from harness.suites import rtp
from harness.errors import DataError


def test_packaged_splits_have_the_documented_counts_and_fields():
    for split, count in (("challenging", 1196), ("nontoxic", 1200)):
        rows = rtp.load_rtp(split)
        assert len(rows) == count
        assert len({row["id"] for row in rows}) == count
        assert all(row["text"].strip() for row in rows)
    assert {row["prompt_split"] for row in rtp.load_rtp("challenging")} == {"toxic"}
    assert {row["prompt_split"] for row in rtp.load_rtp("nontoxic")} == {"nontoxic"}


def test_licence_and_attribution_ship_with_the_data():
    folder = resources.files("harness").joinpath("data", "rtp")
    readme = folder.joinpath("README.md").read_text(encoding="utf-8")
    assert "CC BY-SA 4.0" in readme and "Gehman" in readme and "Content warning" in readme
    assert "Attribution-ShareAlike 4.0" in folder.joinpath("LICENSE-CC-BY-SA-4.0.txt").read_text(encoding="utf-8")


def test_load_returns_copies_the_cache_cannot_be_mutated_through():
    rtp.load_rtp("nontoxic")[0]["text"] = "changed"
    assert rtp.load_rtp("nontoxic")[0]["text"] != "changed"


@pytest.mark.parametrize("split", rtp.SPLITS)
def test_subsets_are_nested_prefixes(split):
    small, large = rtp.rtp_prompts(split, 50, seed=3), rtp.rtp_prompts(split, 400, seed=3)
    assert len(small) == 50 and len(large) == 400
    assert large[:50] == small
    everything = rtp.rtp_prompts(split, None, seed=3)
    assert everything[:400] == large
    assert sorted(r["id"] for r in everything) == sorted(r["id"] for r in rtp.load_rtp(split))
    assert rtp.rtp_prompts(split, 10**6, seed=3) == everything


def test_subsets_are_deterministic_and_depend_on_the_seed():
    first = [r["id"] for r in rtp.rtp_prompts("challenging", 100, seed=0)]
    assert first == [r["id"] for r in rtp.rtp_prompts("challenging", 100, seed=0)]
    other = [r["id"] for r in rtp.rtp_prompts("challenging", 100, seed=1)]
    assert set(first) != set(other)
    # a seeded order, not the file order
    assert first != [r["id"] for r in rtp.load_rtp("challenging")[:100]]


@pytest.mark.parametrize("subset", [0, -1, 2.5, True, "10"])
def test_bad_subset_is_a_data_error(subset):
    with pytest.raises(DataError, match="positive integer"):
        rtp.rtp_prompts("nontoxic", subset)


def test_unknown_split_names_the_valid_ones():
    with pytest.raises(DataError, match="did you mean 'nontoxic'"):
        rtp.load_rtp("non-toxic")


def _write(tmp_path, lines):
    (tmp_path / "rtp_nontoxic.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


GOOD = json.dumps({"id": "a-1", "text": "A prompt"})


@pytest.mark.parametrize("bad, what", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"text": "no id"}), "field 'id'"),
    (json.dumps({"id": "b-2", "text": "  "}), "field 'text'"),
    (json.dumps({"id": "b-2", "text": 7}), "field 'text'"),
    (GOOD, "id 'a-1' repeats line 1"),
])
def test_a_bad_line_is_a_data_error_naming_file_and_line(tmp_path, bad, what):
    folder = _write(tmp_path, [GOOD, bad])
    with pytest.raises(DataError) as info:
        rtp.load_rtp("nontoxic", data_dir=folder)
    message = str(info.value)
    assert str(folder / "rtp_nontoxic.jsonl") in message and "line 2" in message and what in message


def test_a_good_custom_file_loads_and_blank_lines_are_skipped(tmp_path):
    folder = _write(tmp_path, [GOOD, "", json.dumps({"id": "b-2", "text": "Another"})])
    assert [r["id"] for r in rtp.load_rtp("nontoxic", data_dir=folder)] == ["a-1", "b-2"]


def test_missing_and_empty_files_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        rtp.load_rtp("challenging", data_dir=tmp_path)
    (tmp_path / "rtp_challenging.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="holds no prompts"):
        rtp.load_rtp("challenging", data_dir=tmp_path)


def test_module_doctest():
    assert doctest.testmod(rtp).failed == 0
