"""RESULTS.md's tables are made from the JSON rows, never edited by hand: every generated block reads as the rows
give it, and a block edited by hand is caught."""


def _blocks(module) -> tuple[str, list[str]]:
    text = module.RESULTS.read_text()
    return text, [key for key in module.BLOCKS if f"<!-- generated {key} -->" in text]


def test_every_generated_table_in_results_matches_the_rows(regenerate_results):
    text, keys = _blocks(regenerate_results)
    assert {"figshare 0.1", "figshare curve", "explanation scores", "int8"} <= set(keys)
    assert regenerate_results.regenerate(text, keys, "RESULTS.md") == text, (
        "run benchmarks/regenerate_results.py and commit RESULTS.md"
    )


def test_a_table_edited_by_hand_is_caught(regenerate_results):
    text, keys = _blocks(regenerate_results)
    start = text.index("<!-- generated figshare 0.1 -->")
    edited = text[:start] + text[start:].replace("| 100% |", "| 100% (edited) |", 1)
    assert edited != text
    assert regenerate_results.regenerate(edited, keys, "RESULTS.md") == text
