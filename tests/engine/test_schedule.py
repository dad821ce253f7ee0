import math

import pytest
import torch

from medseg.engine.schedule import WarmupCosine


def _schedule(warmup: int, total: int, lr: float = 1.0) -> WarmupCosine:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    return WarmupCosine(optimizer, warmup, total)


def _run(schedule: WarmupCosine, steps: int) -> list[float]:
    lrs = []
    for _ in range(steps):
        lrs.append(schedule.get_last_lr()[0])
        schedule.step()
    return lrs


def test_warmup_then_cosine_to_zero_at_total_steps():
    lrs = _run(_schedule(warmup=4, total=20, lr=2.0), 21)
    assert lrs[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    for step in range(4, 21):
        assert lrs[step] == pytest.approx(1.0 * (1 + math.cos(math.pi * (step - 4) / 16)))
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_replan_shortens_the_decay_without_a_jump():
    schedule = _schedule(warmup=2, total=100)
    _run(schedule, 30)
    before = schedule.get_last_lr()[0]
    schedule.replan(10)
    assert schedule.get_last_lr()[0] == pytest.approx(before)  # no jump at the replan
    lrs = _run(schedule, 11)
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))  # still falling, faster
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12) and lrs[-2] > 0  # 0 exactly 10 steps later


def test_replan_during_warmup_keeps_the_warmup():
    schedule = _schedule(warmup=5, total=100)
    _run(schedule, 2)
    schedule.replan(10)
    lrs = _run(schedule, 11)
    assert lrs[:3] == pytest.approx([0.6, 0.8, 1.0])  # warm-up finishes as planned
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12) and lrs[-2] > 0


def test_state_dict_resumes_the_same_lrs():
    first = _schedule(warmup=2, total=50)
    _run(first, 12)
    first.replan(20)
    _run(first, 3)
    second = _schedule(warmup=2, total=50)
    second.load_state_dict(first.state_dict())
    assert _run(second, 18) == pytest.approx(_run(first, 18))


def test_a_former_lambdalr_state_resumes_at_its_step():
    schedule = _schedule(warmup=2, total=50)
    schedule.load_state_dict({"last_epoch": 26, "base_lrs": [1.0]})
    assert schedule.get_last_lr()[0] == pytest.approx(0.5)  # halfway down the cosine
