import csv

from medseg.data.case import Case
from medseg.data.splits import draw_labeled, read_splits, split_by_group, write_splits
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


def _labelled_groups(groups_per_label=(12, 6, 3), size=5):
    """Groups of `size` cases whose label is the group's stratum: 12 groups of label 0, 6 of 1, 3 of 2."""
    cases = []
    for label, count in enumerate(groups_per_label):
        for g in range(count):
            cases += [Case(id=f"l{label}g{g}s{s}", image="x", group=f"l{label}g{g}", label=label) for s in range(size)]
    return cases


def _labels_in(cases, assignment, split):
    return sorted({case.label for case in cases if assignment[case.id] == split})


def test_a_stratified_split_puts_every_label_in_every_split():
    cases = _labelled_groups()
    ratios = {"train": 0.6, "val": 0.2, "test": 0.2}
    for seed in range(5):
        assignment = split_by_group(cases, ratios, seed, stratify=True)
        for split in ("train", "val", "test"):
            assert _labels_in(cases, assignment, split) == [0, 1, 2]
        for label, groups in enumerate((12, 6, 3)):
            in_train = sum(assignment[c.id] == "train" for c in cases if c.label == label) / (groups * 5)
            assert 0.3 <= in_train <= 0.7  # each label split about 60 / 20 / 20, one group's granularity


def test_a_stratified_labelled_draw_takes_every_label_in_proportion_and_nests():
    cases = _labelled_groups()
    assignment = {case.id: "train" for case in cases}
    draws = {ratio: draw_labeled(cases, assignment, 4, ratio=ratio, stratify=True) for ratio in (0.15, 0.3, 0.6)}
    labelled = {ratio: {i for i, split in draw.items() if split == "train"} for ratio, draw in draws.items()}
    assert labelled[0.15] <= labelled[0.3] <= labelled[0.6]
    assert _labels_in(cases, draws[0.15], "train") == [0, 1, 2]
    shares = [
        sum(c.id in labelled[0.6] for c in cases if c.label == label) / sum(c.label == label for c in cases)
        for label in (0, 1, 2)
    ]
    assert max(shares) - min(shares) <= 1 / 3 + 1e-9  # within one group of the smallest stratum (3 groups)
    assert abs(len(labelled[0.3]) - 0.3 * len(cases)) <= 5  # at most one group over


def test_stratifying_without_image_labels_names_the_setting():
    import pytest

    from medseg.errors import ConfigError

    with pytest.raises(ConfigError, match="data.stratify_by_label: no case has an image label"):
        split_by_group(_cases(), {"train": 0.6, "val": 0.2, "test": 0.2}, 0, stratify=True)


def test_figshare_stratified_validation_holds_all_three_tumour_types():
    with (need(FIGSHARE) / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    cases = [Case(id=r["file"], image=r["file"], group=r["block"], label=int(r["label"])) for r in rows]
    plain = split_by_group(cases, {"train": 0.7, "val": 0.1, "test": 0.2}, 0)
    stratified = split_by_group(cases, {"train": 0.7, "val": 0.1, "test": 0.2}, 0, stratify=True)

    def pituitary_share(assignment):
        val = [c for c in cases if assignment[c.id] == "val"]
        return sum(c.label == 3 for c in val) / len(val)

    assert pituitary_share(plain) > 0.8  # the protocol's split: 250 of its 300 validation slices (RESULTS.md)
    assert pituitary_share(stratified) < 0.45  # the dataset's share is 0.30
    assert _labels_in(cases, stratified, "val") == [1, 2, 3]
