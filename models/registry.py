"""Build any model from its config: `build_model({"name": ..., **params}, meta)`.

One entry per model: name -> "module:Class". Each model module defines `<Class>Config` (a
dataclass, so unknown or mistyped keys are reported by name) and `<Class>(cfg, meta)`, an
`nn.Module` whose `forward(batch)` returns a `models.output.ModelOutput`.
"""
from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from common.config import from_dict
from common.errors import MDAFError

MODELS = {
    "mdaf": "models.mdaf.model:MDAF",
    "mamba4rec_v2": "models.baselines.mamba4rec_ctr:Mamba4RecV2",
    "dcnv3": "models.baselines.dcnv3:DCNv3Model",
    "dcnv2": "models.baselines.dcnv2:DCNv2Model",
    "bst": "models.baselines.bst:BST",
    "din": "models.baselines.din:DIN",
    "autoint": "models.baselines.autoint:AutoIntPlus",
    "dnn": "models.baselines.dnn:DNN",
    "logistic": "models.baselines.logistic:Logistic",
    "gbdt": "models.baselines.gbdt:GBDT",
    "item_rate": "models.baselines.item_rate:ItemRate",
    "mamba4rec": "models.next_item.mamba4rec:Mamba4Rec",
    "sasrec": "models.next_item.sasrec:SASRec",
    "gru4rec": "models.next_item.gru4rec:GRU4Rec",
    "mambarec": "models.next_item.mambarec:MambaRec",
    "pop": "models.next_item.pop:Pop",
    "recent": "models.next_item.recent:Recent",
    "knn": "models.next_item.knn:KNN",
}
# the models under models/next_item/ rank the catalogue; the others score a (user, ad) pair
NEXT_ITEM_MODELS = tuple(name for name, where in MODELS.items() if where.startswith("models.next_item."))


def model_task(name: str) -> str:
    """The task model `name` serves: "next_item" or "ctr"."""
    return "next_item" if name in NEXT_ITEM_MODELS else "ctr"


def model_classes(name: str) -> tuple[type[nn.Module], type]:
    """(model class, its config dataclass) for registry name `name`."""
    if name not in MODELS:
        raise MDAFError(f"model config: key 'name' is {name!r}; expected one of {sorted(MODELS)}")
    module, cls_name = MODELS[name].split(":")
    mod = importlib.import_module(module)
    return getattr(mod, cls_name), getattr(mod, f"{cls_name}Config")


def build_model(cfg: dict[str, Any], meta: dict) -> nn.Module:
    """The model `cfg["name"]` with the other keys of `cfg` as its config, for dataset `meta`."""
    if not isinstance(cfg, dict) or "name" not in cfg:
        raise MDAFError(f"model config: expected a mapping with key 'name' (one of {sorted(MODELS)})")
    params = {k: v for k, v in cfg.items() if k != "name"}
    cls, config_cls = model_classes(cfg["name"])
    return cls(from_dict(config_cls, params, where=f"model config ({cfg['name']})"), meta)
