"""Every model config in configs/model/ builds, trains a few steps on a loader batch with its loss
falling, and the MDAF variants differ by config alone."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.config import resolve_section
from common.errors import MDAFError
from data_prep.loader import BatchLoader
from models.losses import model_loss
from models.fitted import FittedModel
from models.mdaf.model import MDAF
from models.registry import build_model, model_task

ALL_CONFIGS = sorted((Path(__file__).parents[1] / "configs" / "model").glob("*.yaml"))
CONFIGS = [p for p in ALL_CONFIGS if model_task(resolve_section(str(p), str(p))["name"]) == "ctr"]  # next-item:
# tests/test_next_item_models.py


def small_batch(batch: dict[str, torch.Tensor], n: int = 64) -> dict[str, torch.Tensor]:
    return {k: v[:n] for k, v in batch.items()}


def model_config(path) -> dict:
    """A model YAML with its `base`, if any, resolved (configs/model/mdaf_static.yaml)."""
    return resolve_section(str(path), str(path))


def test_every_registered_model_has_a_config():
    names = {model_config(p)["name"] for p in ALL_CONFIGS}
    from models.registry import MODELS

    assert names == set(MODELS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_model_trains_and_its_loss_falls(tiny_dataset, tiny_batch, path):
    torch.manual_seed(0)
    model = build_model(model_config(path), tiny_dataset.meta)
    batch = small_batch(tiny_batch)
    aux = "tri_bce" if path.stem in ("dcnv3", "mdaf", "mdaf_static", "mdaf_bst") else "none"

    def loss() -> torch.Tensor:
        return model_loss(model(batch), batch["label"], smoothing=0.05, aux_loss=aux)

    model.eval()
    with torch.no_grad():
        before = loss().item()
    if isinstance(model, FittedModel):  # learns in one fit (models/fitted.py), not by gradient steps
        model.fit([batch], [batch])
        with torch.no_grad():
            assert loss().item() < 0.8 * before
        return
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(15):
        opt.zero_grad()
        value = loss()
        assert torch.isfinite(value)
        value.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = loss().item()
    assert after < 0.8 * before, (before, after)


def test_mdaf_variants_by_config(tiny_dataset, tiny_batch):
    meta, batch = tiny_dataset.meta, small_batch(tiny_batch, 16)
    variants = {p: build_model(model_config(Path("configs/model") / f"{p}.yaml"), meta) for p in ("mdaf", "mdaf_static", "mdaf_sequential", "mdaf_bst")}
    for v in variants.values():
        assert isinstance(v, MDAF)
    full = variants["mdaf"](batch)
    gate = full.diagnostics["gate"]
    assert gate.shape == (16, 64) and ((gate > 0) & (gate < 1)).all()
    assert set(full.aux_logits) == {"ecn", "lcn"}
    assert variants["mdaf_static"].sequence is None and variants["mdaf_static"](batch).diagnostics == {}
    assert variants["mdaf_static"].diagnostics() is None
    assert variants["mdaf_sequential"].static is None and variants["mdaf_sequential"](batch).aux_logits == {}
    assert type(variants["mdaf_bst"].sequence.encoder).__name__ == "TransformerEncoder"
    concat = build_model({"name": "mdaf", "fusion": "concat", "static": {"network": "dcnv2"}}, meta)
    out = concat(batch)
    assert out.diagnostics == {} and out.logit.shape == (16,)


def test_bad_model_configs_name_the_key(tiny_dataset):
    meta = tiny_dataset.meta
    with pytest.raises(MDAFError, match="'name' is 'mamba5'"):
        build_model({"name": "mamba5"}, meta)
    with pytest.raises(MDAFError, match="unknown key"):
        build_model({"name": "mdaf", "sequence": {"layers": 3}}, meta)
    with pytest.raises(MDAFError, match="'encoder' is 'lstm'"):
        build_model({"name": "mdaf", "sequence": {"encoder": "lstm"}}, meta)
    with pytest.raises(MDAFError, match="both 'none'"):
        build_model({"name": "mdaf", "sequence": {"encoder": "none"}, "static": {"network": "none"}}, meta)
    with pytest.raises(MDAFError, match="timeline"):
        build_model({"name": "mdaf", "sequence": {"timeline": "clicks"}}, meta)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_model_runs_on_userbehavior(tiny_userbehavior, path):
    """The other source: item histories, no brand, fewer static fields; every config still builds."""
    batch = next(iter(BatchLoader(tiny_userbehavior, "train", seq_len=12, batch_size=32)))
    model = build_model(model_config(path), tiny_userbehavior.meta)
    if isinstance(model, FittedModel):
        model.fit([batch], [batch])
    out = model(batch)
    assert out.logit.shape == (32,) and torch.isfinite(out.logit).all()
    if not isinstance(model, FittedModel):
        out.logit.sum().backward()


def test_training_is_reproducible_bit_for_bit_on_cpu(tiny_dataset, tiny_batch):
    """Same seed, same batches -> the same weights, with the C++ kernels on 2 threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        states = []
        for _ in range(2):
            torch.manual_seed(0)
            model = build_model(model_config(CONFIGS[0].with_name("mdaf.yaml")), tiny_dataset.meta)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            for _ in range(3):
                opt.zero_grad()
                model_loss(model(tiny_batch), tiny_batch["label"], 0.05, "tri_bce").backward()
                opt.step()
            states.append(model.state_dict())
    finally:
        torch.set_num_threads(before)
    for name, value in states[0].items():
        assert torch.equal(value, states[1][name]), name
