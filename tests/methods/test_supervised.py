import torch

from medseg.config import load_config
from medseg.data.dataset import iterate_batches, prepare_dataset
from medseg.engine.trainer import build_method
from medseg.methods import METHODS


def test_registry_has_supervised():
    assert "supervised" in METHODS


def test_loss_is_finite_and_falls_in_a_few_steps(phantom_config):
    cfg = load_config(phantom_config())
    method = build_method(cfg)
    dataset = prepare_dataset(cfg.data, cfg.seed)
    batch = next(iterate_batches(dataset.store, dataset.rows("train"), 8))
    optimizer = torch.optim.AdamW(method.model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = method.training_step(batch)["loss"]
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    probs = method.predict(method.model.eval(), batch["image"])
    assert probs.shape == (8, 1, 48, 48) and probs.min() >= 0 and probs.max() <= 1
