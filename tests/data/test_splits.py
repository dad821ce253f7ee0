import csv

from medseg.data.case import Case
from medseg.data.splits import read_splits, split_by_group, write_splits
from tests.conftest import FIGSHARE, need


def _cases(groups=20, per_group=(1, 7)):
    cases = []
    for g in range(groups):
        for s in range(per_group[0] + g % per_group[1]):
            cases.append(Case(id=f"g{g}_s{s}", image="x", group=f"g{g}"))
    return cases


def test_no_group_crosses_a_split_and_ratios_hold():
    cases = _cases()
    assignment = split_by_group(cases, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=3)
    sides: dict[str, set[str]] = {}
    for case in cases:
        sides.setdefault(case.group, set()).add(assignment[case.id])
    assert all(len(s) == 1 for s in sides.values())
    share = sum(v == "train" for v in assignment.values()) / len(cases)
    assert 0.55 < share < 0.85
    assert set(assignment.values()) == {"train", "val", "test"}


def test_split_is_a_pure_function_of_seed():
    cases = _cases()
    ratios = {"train": 0.6, "val": 0.2, "test": 0.2}
    assert split_by_group(cases, ratios, 1) == split_by_group(list(cases), ratios, 1)
    assert split_by_group(cases, ratios, 1) != split_by_group(cases, ratios, 2)


def test_splits_csv_round_trip(tmp_path):
    cases = _cases(5)
    assignment = split_by_group(cases, {"train": 0.6, "val": 0.2, "test": 0.2}, 0)
    write_splits(tmp_path / "splits.csv", cases, assignment)
    assert read_splits(tmp_path / "splits.csv") == assignment


def test_figshare_block_split_keeps_blocks_whole():
    with (need(FIGSHARE) / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    cases = [Case(id=r["file"], image=r["file"], group=r["block"]) for r in rows]
    assignment = split_by_group(cases, {"train": 0.7, "val": 0.1, "test": 0.2}, 0)
    blocks: dict[str, set[str]] = {}
    for case in cases:
        blocks.setdefault(case.group, set()).add(assignment[case.id])
    assert all(len(s) == 1 for s in blocks.values())
    assert len({s for v in blocks.values() for s in v}) == 3


def test_a_splits_file_with_an_unknown_split_name_is_named(tmp_path):
    import pytest

    from medseg.data.splits import read_splits
    from medseg.errors import DataError

    path = tmp_path / "splits.csv"
    path.write_text("id,group,split\na,g,train\nb,g,unlabelled\n")
    with pytest.raises(DataError, match=r"splits.csv: line 3: split 'unlabelled' is not one of"):
        read_splits(path)
