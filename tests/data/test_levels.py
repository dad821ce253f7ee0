"""Slice levels: each slice's position in its patient's volume."""

from medseg.data.case import Case
from medseg.data.levels import slice_levels


def test_slices_of_a_folder_are_ordered_by_their_numbers_not_as_text():
    cases = [Case(id=f"p1/p1_{k}", image="", group="p1") for k in (10, 1, 2, 3, 9)]
    levels = slice_levels(cases)
    assert [levels[f"p1/p1_{k}"] for k in (1, 2, 3, 9, 10)] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_slice_indices_order_a_volume_and_a_lone_slice_sits_in_the_middle():
    volume = [Case(id=f"v/{name}", image="", group="v", slice=index) for name, index in (("a", 2), ("b", 0), ("c", 1))]
    levels = slice_levels([*volume, Case(id="single", image="", group="q")])
    assert (levels["v/b"], levels["v/c"], levels["v/a"]) == (0.0, 0.5, 1.0)
    assert levels["single"] == 0.5
