"""Serving a Mamba model one event at a time: each user's recurrent state (every layer's conv
window and scan state, models/ssm/mamba.py `step`) is kept between requests, a new event is
folded in at a cost that does not grow with the history, and candidates are scored from the state
without re-reading the history. After any number of events the output equals the full forward
over the user's whole history (tests/test_streaming.py).

A model streams when its output at the newest event depends on the history only through that
recurrence: Mamba4Rec (models/next_item/mamba4rec.py), and MDAF whose sequential branch is Mamba
with no target attention, match features or time embedding, which read the candidate
(models/mdaf/sequence_branch.py). Such a model provides `stream_encoder()` (its
Mamba4RecEncoder) and `event_input(event)` (one event's fields, each (B,), -> (B, H)).

    streamer = Streamer(model)
    states = streamer.empty(["u1", "u2"])
    out = streamer.update(states, ["u2"], {"item": torch.tensor([17])})     # (1, H)
    scores = model.score(out)                     # Mamba4Rec; MDAF: model(batch, sequence_state=out)
    states.save("states.pt"); states = streamer.load("states.pt")

States belong to one model. They record its shape (`StateShape`: layers, hidden, expand, d_state,
d_conv, dtype) and the SHA-256 of the weights that folded them; `Streamer` refuses states of
another shape or other weights by name, so a 1-layer model's states never step through a 2-layer
model. A state file is checksummed (common/checked_file.py): a damaged one is refused on load.

User ids: an integer of any type (int, a NumPy integer, a one-element integer tensor) is kept as
a Python int, a string (or NumPy string) as str; 1 and "1" are two users. Anything else (a bool, a
float, None) is refused: it is never a user id a caller meant.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import operator
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common.checked_file import read_checked, write_checked
from common.errors import MDAFError

FORMAT = "mdaf-user-states-2"
UserId = int | str


def user_id(value: Any) -> UserId:
    """`value` as states key users (module doc): int for integers of any type, str for strings."""
    if isinstance(value, str):
        return str(value)
    if not isinstance(value, (bool, np.bool_)):
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise MDAFError(f"user states: user id {value!r} ({type(value).__name__}) is neither an integer nor a string")


@dataclass(frozen=True)
class StateShape:
    """What states must share with a model to step through it."""

    n_layers: int
    hidden: int
    expand: int
    d_state: int
    d_conv: int
    dtype: str


def state_shape(layers: list[tuple[torch.Tensor, torch.Tensor]], out: torch.Tensor) -> StateShape:
    """The shape of states held as per-layer (conv (U, d_inner, d_conv), scan (U, d_inner, d_state))
    and out (U, hidden); MDAFError when the tensors disagree with each other."""
    if not layers or out.dim() != 2:
        raise MDAFError(f"user states: expected at least one layer and out of shape (users, hidden), got "
                        f"{len(layers)} layer(s) and out {tuple(out.shape)}")
    users, hidden = out.shape
    d_inner, d_conv = layers[0][0].shape[1:]
    d_state = layers[0][1].shape[2]
    for k, (conv, ssm) in enumerate(layers):
        if conv.shape != (users, d_inner, d_conv) or ssm.shape != (users, d_inner, d_state):
            raise MDAFError(f"user states: layer {k} holds conv {tuple(conv.shape)} and scan {tuple(ssm.shape)}; "
                            f"expected ({users}, {d_inner}, {d_conv}) and ({users}, {d_inner}, {d_state})")
    if d_inner % hidden:
        raise MDAFError(f"user states: conv width {d_inner} is not a multiple of hidden {hidden}")
    return StateShape(len(layers), hidden, d_inner // hidden, d_state, d_conv, str(out.dtype))


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of `model`'s parameters and buffers, by name: which weights folded a state."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class UserStates:
    """Recurrent states of a set of users: row r belongs to ids[r].
    layers: per layer (conv window (U, d_inner, d_conv), scan state (U, d_inner, d_state));
    out: (U, H) the model's output after each user's newest event (zeros before any);
    model: SHA-256 of the weights that folded them ("" when unknown). `add` makes room for new
    users (the tensors grow by doubling, so adding users one by one costs O(1) each on average)."""

    def __init__(self, ids: list, layers: list[tuple[torch.Tensor, torch.Tensor]], out: torch.Tensor,
                 model: str = ""):
        self.ids = [user_id(u) for u in ids]
        self.index = {u: r for r, u in enumerate(self.ids)}
        if len(self.index) != len(self.ids):
            raise MDAFError("user states: user ids must be unique")
        self.shape = state_shape(layers, out)
        if out.shape[0] != len(self.ids):
            raise MDAFError(f"user states: {out.shape[0]} states for {len(self.ids)} user ids")
        self._layers, self._out, self.model = [tuple(s) for s in layers], out, model

    @property
    def layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.ids)
        return [(conv[:n], ssm[:n]) for conv, ssm in self._layers]

    @property
    def out(self) -> torch.Tensor:
        return self._out[: len(self.ids)]

    def rows(self, ids: list) -> torch.Tensor:
        ids = [user_id(u) for u in ids]
        if len(set(ids)) != len(ids):
            raise MDAFError("user states: one event per user per update; the ids repeat")
        missing = [u for u in ids if u not in self.index]
        if missing:
            raise MDAFError(f"user states: no state for user id(s) {missing[:5]}; known users: {len(self.ids)}")
        return torch.tensor([self.index[u] for u in ids], dtype=torch.long, device=self._out.device)

    def add(self, ids: list) -> None:
        """An empty state (zeros: no event yet) for each user of `ids` not held already."""
        new = [u for u in dict.fromkeys(user_id(u) for u in ids) if u not in self.index]
        need = len(self.ids) + len(new)
        if need > self._out.shape[0]:
            capacity = max(need, 2 * self._out.shape[0])

            def grown(t: torch.Tensor) -> torch.Tensor:
                bigger = t.new_zeros(capacity, *t.shape[1:])
                bigger[: len(self.ids)] = t[: len(self.ids)]
                return bigger

            self._layers = [(grown(conv), grown(ssm)) for conv, ssm in self._layers]
            self._out = grown(self._out)
        for u in new:
            self.index[u] = len(self.ids)
            self.ids.append(u)

    def save(self, path: str | Path) -> None:
        """Write every state to `path` at once, checksummed (a reader never sees half a file)."""
        buffer = io.BytesIO()
        torch.save({"shape": dataclasses.asdict(self.shape), "model": self.model, "ids": self.ids,
                    "layers": [[conv.clone(), ssm.clone()] for conv, ssm in self.layers], "out": self.out.clone()},
                   buffer)
        write_checked(path, FORMAT, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> "UserStates":
        payload = read_checked(path, FORMAT)
        try:
            saved = torch.load(io.BytesIO(payload), map_location=device, weights_only=True)
            states = cls(saved["ids"], [tuple(s) for s in saved["layers"]], saved["out"], saved["model"])
        except (RuntimeError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as exc:
            raise MDAFError(f"{path}: cannot read user states ({type(exc).__name__}: {exc})") from None
        if dataclasses.asdict(states.shape) != saved["shape"]:
            raise MDAFError(f"{path}: records shape {saved['shape']} but holds {dataclasses.asdict(states.shape)}")
        return states


class Streamer:
    """Folds events into UserStates with `model`'s recurrence (module doc); the model is put in eval mode."""

    def __init__(self, model: nn.Module):
        if not hasattr(model, "stream_encoder"):
            raise MDAFError(f"{type(model).__name__} cannot stream: its output needs more than a recurrent state")
        self.model = model.eval()
        self.encoder = model.stream_encoder()
        mamba = self.encoder.layers[0].mamba
        self.hidden = mamba.in_proj.in_features
        self.device = mamba.in_proj.weight.device
        self.shape = StateShape(len(self.encoder.layers), self.hidden, mamba.d_inner // self.hidden, mamba.d_state,
                                mamba.conv1d.weight.shape[-1], str(mamba.in_proj.weight.dtype))
        self.weights = weights_digest(model)

    def empty(self, ids: list) -> UserStates:
        return UserStates(ids, self.encoder.empty_state(len(ids), self.device),
                          torch.zeros(len(ids), self.hidden, device=self.device), self.weights)

    def load(self, path: str | Path) -> UserStates:
        """The states saved at `path`, checked against this model."""
        states = UserStates.load(path, self.device)
        self.check(states, str(path))
        return states

    def check(self, states: UserStates, where: str = "user states") -> None:
        """MDAFError naming each difference unless `states` were made by this model's shape and weights."""
        theirs, ours = dataclasses.asdict(states.shape), dataclasses.asdict(self.shape)
        differ = [f"{key} {theirs[key]} in the states, {ours[key]} in the model" for key in ours
                  if theirs[key] != ours[key]]
        if differ:
            raise MDAFError(f"{where}: made for another model ({'; '.join(differ)})")
        if states.model and states.model != self.weights:
            raise MDAFError(f"{where}: folded by other weights (sha256 {states.model[:12]}..., this model's "
                            f"{self.weights[:12]}...); states step only through the weights that made them")

    def event_tensors(self, event: dict, ids: list) -> dict[str, torch.Tensor]:
        """`event` (field -> one integer index per user of `ids`) as (len(ids),) int64 tensors."""
        if not isinstance(event, dict):
            raise MDAFError(f"event: expected a mapping of field -> indices, got {type(event).__name__}")
        out = {}
        for field, values in event.items():
            try:
                t = torch.as_tensor(values)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise MDAFError(f"event field {field!r}: not an array of indices ({exc})") from None
            if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
                raise MDAFError(f"event field {field!r}: expected integer indices, got {t.dtype}")
            if tuple(t.shape) != (len(ids),):
                raise MDAFError(f"event field {field!r}: shape {tuple(t.shape)} for {len(ids)} user id(s); "
                                f"expected one index per user, ({len(ids)},)")
            negative = (t < 0).nonzero()
            if len(negative):
                r = int(negative[0, 0])
                raise MDAFError(f"event field {field!r}: index {int(t[r])} for user {ids[r]!r}; indices are >= 0 "
                                "(0 padding, 1 unknown)")
            out[field] = t.to(self.device, torch.long)
        return out

    @torch.no_grad()
    def update(self, states: UserStates, ids: list, event: dict) -> torch.Tensor:
        """Fold one new event into each user of `ids` (event: field -> (len(ids),) indices); returns
        and stores the model's output after it, (len(ids), H)."""
        self.check(states)
        rows = states.rows(ids)
        event = self.event_tensors(event, list(ids))
        try:
            x = self.model.event_input(event)  # (B, H)
        except KeyError as exc:
            raise MDAFError(f"event: missing field {exc.args[0]!r} (given {sorted(event)})") from None
        out, new = self.encoder.step(x, [(conv[rows], ssm[rows]) for conv, ssm in states.layers])
        for (conv, ssm), (new_conv, new_ssm) in zip(states.layers, new):
            conv[rows], ssm[rows] = new_conv, new_ssm
        states.out[rows] = out
        return out
