"""The command line's config and override surface, driven with random keys, values, types and nesting
(hypothesis): `medseg train CONFIG key=value ...` either accepts the config (and would train) or refuses it with
exit 2 and one `error:` line, never a traceback."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from medseg.cli import app

runner = CliRunner()
WORDS = [
    *("data", "train", "eval", "model", "method", "augment", "weak", "seed", "name", "output_dir", "supervision"),
    *("epochs", "lr", "size", "channels", "source", "features", "threshold", "grad_clip", "device", "threads"),
    *("batch_size", "labeled_ratio", "labeled_file", "splits", "crop", "format", "count", "cache_dir"),
]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(), st.text(max_size=12))
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
keys = st.lists(st.sampled_from(WORDS) | st.text(min_size=1, max_size=8), min_size=1, max_size=4).map(".".join)
as_yaml = values.map(lambda value: yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip())
pairs = st.lists(st.tuples(keys, as_yaml | st.text(max_size=20)).map("=".join) | st.text(max_size=20), max_size=4)


class Accepted(Exception):
    """Raised where training would start: the config passed every check."""


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overrides=pairs)
def test_every_override_is_accepted_or_refused_with_one_line(tmp_path, overrides):
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "surface",
                "output_dir": str(tmp_path / "runs"),
                "data": {"source": {"format": "phantoms", "count": 16, "size": 32}, "size": 32},
                "model": {"name": "unet", "features": [4, 8]},
            }
        )
    )

    def accept(*args, **kwargs):
        raise Accepted

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("medseg.engine.trainer.train", accept)
        patch.setattr("medseg.weak.pipeline.train_weak", accept)
        result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "r"), "--", *overrides])
    if isinstance(result.exception, Accepted):
        return
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, (overrides, result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith("error:"), (overrides, result.output)
    assert "Traceback" not in result.output
