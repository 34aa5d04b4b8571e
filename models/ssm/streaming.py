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
    states.save("states.pt"); states = UserStates.load("states.pt")
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch
from torch import nn

from common.atomic import atomic_write_bytes
from common.errors import MDAFError

FORMAT = "mdaf-user-states-1"


class UserStates:
    """Recurrent states of a set of users: row r belongs to ids[r].
    layers: per layer (conv window (U, d_inner, d_conv), scan state (U, d_inner, d_state));
    out: (U, H) the model's output after each user's newest event (zeros before any)."""

    def __init__(self, ids: list, layers: list[tuple[torch.Tensor, torch.Tensor]], out: torch.Tensor):
        self.ids, self.layers, self.out = list(ids), layers, out
        self.index = {u: r for r, u in enumerate(self.ids)}
        if len(self.index) != len(self.ids):
            raise MDAFError("user states: user ids must be unique")

    def rows(self, ids: list) -> torch.Tensor:
        if len(set(ids)) != len(ids):
            raise MDAFError("user states: one event per user per update; the ids repeat")
        missing = [u for u in ids if u not in self.index]
        if missing:
            raise MDAFError(f"user states: no state for user id(s) {missing[:5]}; known users: {len(self.ids)}")
        return torch.tensor([self.index[u] for u in ids], dtype=torch.long, device=self.out.device)

    def save(self, path: str | Path) -> None:
        """Write every state to `path` at once (a reader never sees half a file)."""
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, "ids": self.ids, "layers": [list(s) for s in self.layers], "out": self.out}, buffer)
        atomic_write_bytes(Path(path), buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> "UserStates":
        try:
            saved = torch.load(path, map_location=device, weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise MDAFError(f"{path}: cannot read user states ({type(exc).__name__}: {exc})") from exc
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise MDAFError(f"{path}: not a user-state file (expected format {FORMAT!r})")
        return cls(saved["ids"], [tuple(s) for s in saved["layers"]], saved["out"])


class Streamer:
    """Folds events into UserStates with `model`'s recurrence (module doc); the model is put in eval mode."""

    def __init__(self, model: nn.Module):
        if not hasattr(model, "stream_encoder"):
            raise MDAFError(f"{type(model).__name__} cannot stream: its output needs more than a recurrent state")
        self.model = model.eval()
        self.encoder = model.stream_encoder()
        self.hidden = self.encoder.layers[0].mamba.in_proj.in_features

    def empty(self, ids: list) -> UserStates:
        device = next(self.model.parameters()).device
        return UserStates(ids, self.encoder.empty_state(len(ids), device), torch.zeros(len(ids), self.hidden, device=device))

    @torch.no_grad()
    def update(self, states: UserStates, ids: list, event: dict[str, torch.Tensor]) -> torch.Tensor:
        """Fold one new event into each user of `ids` (event: field -> (len(ids),)); returns and
        stores the model's output after it, (len(ids), H)."""
        rows = states.rows(ids)
        x = self.model.event_input(event)  # (B, H)
        out, new = self.encoder.step(x, [(conv[rows], ssm[rows]) for conv, ssm in states.layers])
        for (conv, ssm), (new_conv, new_ssm) in zip(states.layers, new):
            conv[rows], ssm[rows] = new_conv, new_ssm
        states.out[rows] = out
        return out
