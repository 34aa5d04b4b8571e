"""Streaming (models/ssm/streaming.py): one event at a time equals the full forward over the whole
history, after any number of events, for Mamba4Rec and for MDAF without target attention; state
files that carry their model's shape and a checksum, and one-line errors for what is wrong."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from common.errors import MDAFError
from data_prep.loader import batch_key
from models.registry import build_model
from models.ssm.streaming import Streamer, UserStates

META = {"vocab_sizes": {"item": 52}}


def full_outputs(model, histories: list[list[int]]) -> torch.Tensor:
    """The forward's output at the newest item of each (left-padded) history, (U, H)."""
    length = max(map(len, histories))
    items = torch.zeros(len(histories), length, dtype=torch.long)
    for r, h in enumerate(histories):
        items[r, length - len(h):] = torch.tensor(h)
    with torch.no_grad():
        return model.encode(items, items > 0)[:, -1]


@pytest.mark.parametrize("n_layers", [1, 2])
def test_mamba4rec_stream_equals_the_full_forward_after_every_event(n_layers):
    torch.manual_seed(0)
    model = build_model({"name": "mamba4rec", "hidden": 16, "n_layers": n_layers, "d_state": 8}, META).eval()
    streamer = Streamer(model)
    users = ["a", "b", "c"]
    states = streamer.empty(users)
    histories = {u: [] for u in users}
    gen = torch.Generator().manual_seed(1)
    for step in range(60):  # users take turns unevenly: "a" every step, "b" every 2nd, "c" every 3rd
        active = [u for u, k in zip(users, (1, 2, 3)) if step % k == 0]
        items = torch.randint(2, 52, (len(active),), generator=gen)
        out = streamer.update(states, active, {"item": items})
        for u, i in zip(active, items.tolist()):
            histories[u].append(i)
        expected = full_outputs(model, [histories[u] for u in active])
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model.score(out), model.score(expected), rtol=1e-4, atol=1e-4)
    assert len(histories["a"]) == 60 and len(histories["c"]) == 20


def test_saved_states_load_and_continue_the_same(tmp_path):
    torch.manual_seed(0)
    model = build_model({"name": "mamba4rec", "hidden": 16, "d_state": 8}, META).eval()
    streamer = Streamer(model)
    states = streamer.empty([10, 20])
    for item in (5, 9, 13):
        streamer.update(states, [10, 20], {"item": torch.tensor([item, item + 1])})
    states.save(tmp_path / "states.pt")
    loaded = UserStates.load(tmp_path / "states.pt")
    assert loaded.ids == [10, 20]
    a = streamer.update(states, [20], {"item": torch.tensor([7])})
    b = streamer.update(loaded, [20], {"item": torch.tensor([7])})
    assert torch.equal(a, b) and torch.equal(loaded.out, states.out)


def test_bad_requests_and_files_are_named(tmp_path):
    model = build_model({"name": "mamba4rec", "hidden": 16, "d_state": 8}, META).eval()
    streamer = Streamer(model)
    states = streamer.empty(["a"])
    with pytest.raises(MDAFError, match="no state for user id"):
        streamer.update(states, ["zz"], {"item": torch.tensor([3])})
    with pytest.raises(MDAFError, match="repeat"):
        streamer.update(states, ["a", "a"], {"item": torch.tensor([3, 4])})
    (tmp_path / "junk.pt").write_bytes(b"not a state file")
    with pytest.raises(MDAFError, match="junk.pt"):
        UserStates.load(tmp_path / "junk.pt")
    with pytest.raises(MDAFError, match="cannot stream"):
        Streamer(build_model({"name": "sasrec", "hidden": 16, "n_heads": 2, "inner": 32}, META))


STREAMING_MDAF = {"name": "mdaf", "hidden": 16, "mlp": {"hidden": [16]},
                  "sequence": {"hidden": 16, "n_layers": 2, "target_attention": False, "match_features": False}}


def test_mdaf_without_target_attention_streams_its_sequential_branch(tiny_dataset, tiny_batch):
    torch.manual_seed(0)
    model = build_model(STREAMING_MDAF, tiny_dataset.meta).eval()
    streamer = Streamer(model)
    timeline = model.sequence.tokens.timeline
    fields = list(model.sequence.tokens.fields)
    batch = {k: v[:12] for k, v in tiny_batch.items()}
    mask = batch[batch_key(timeline, "mask")]
    states = streamer.empty(list(range(12)))
    for t in range(mask.shape[1]):  # fold in each sample's real behaviours, oldest first
        rows = [r for r in range(12) if mask[r, t]]
        if rows:
            streamer.update(states, rows, {f: batch[batch_key(timeline, f)][rows, t] for f in fields})
    with torch.no_grad():
        full = model(batch).logit
        served = model(batch, sequence_state=states.out).logit
    torch.testing.assert_close(served, full, rtol=1e-4, atol=1e-5)
    assert mask.sum(1).min() < mask.sum(1).max()  # the histories differ in length


def test_mdaf_with_target_attention_refuses_to_stream(tiny_dataset):
    with pytest.raises(MDAFError, match="target_attention"):
        Streamer(build_model({"name": "mdaf"}, tiny_dataset.meta))


def mamba4rec(**config) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model({"name": "mamba4rec", "hidden": 16, "d_state": 8, **config}, META).eval()


def folded(streamer: Streamer, ids: list, items: tuple[int, ...] = (5, 9, 13)) -> UserStates:
    states = streamer.empty(ids)
    for item in items:
        streamer.update(states, ids, {"item": torch.full((len(ids),), item)})
    return states


def test_states_of_a_1_layer_model_never_step_through_a_2_layer_model(tmp_path):
    states = folded(Streamer(mamba4rec(n_layers=1)), ["a"])
    states.save(tmp_path / "states.pt")
    deeper = Streamer(mamba4rec(n_layers=2))
    with pytest.raises(MDAFError, match="n_layers 1 in the states, 2 in the model"):
        deeper.update(states, ["a"], {"item": torch.tensor([3])})
    with pytest.raises(MDAFError, match="n_layers 1 in the states, 2 in the model"):
        deeper.load(tmp_path / "states.pt")


def test_states_of_other_weights_are_refused(tmp_path):
    states = folded(Streamer(mamba4rec()), ["a"])
    torch.manual_seed(1)
    other = Streamer(build_model({"name": "mamba4rec", "hidden": 16, "d_state": 8}, META))
    with pytest.raises(MDAFError, match="folded by other weights"):
        other.update(states, ["a"], {"item": torch.tensor([3])})


def test_numpy_integer_user_ids_save_and_load_as_python_ints(tmp_path):
    streamer = Streamer(mamba4rec())
    states = folded(streamer, [np.int64(10), np.int32(20)])
    states.save(tmp_path / "states.pt")
    loaded = UserStates.load(tmp_path / "states.pt")
    assert loaded.ids == [10, 20] and all(type(u) is int for u in loaded.ids)
    a = streamer.update(states, [np.int64(20)], {"item": torch.tensor([7])})
    b = streamer.update(loaded, [20], {"item": torch.tensor([7])})
    assert torch.equal(a, b)


def test_a_state_file_with_flipped_bytes_is_refused_by_its_checksum(tmp_path):
    streamer = Streamer(mamba4rec())
    folded(streamer, ["a", "b"]).save(tmp_path / "states.pt")
    data = bytearray((tmp_path / "states.pt").read_bytes())
    for at in (len(data) // 2, len(data) - 40):
        data[at] ^= 0x40
    (tmp_path / "states.pt").write_bytes(bytes(data))
    with pytest.raises(MDAFError, match="states.pt: checksum mismatch"):
        UserStates.load(tmp_path / "states.pt")


@pytest.mark.parametrize("key, value", [("hidden", 32), ("d_state", 4)])
def test_a_hidden_or_d_state_mismatch_is_named(tmp_path, key, value):
    states = folded(Streamer(mamba4rec()), ["a"])
    other = Streamer(mamba4rec(**{key: value}))
    with pytest.raises(MDAFError, match=f"{key} {16 if key == 'hidden' else 8} in the states, {value} in the model"):
        other.update(states, ["a"], {"item": torch.tensor([3])})


def test_an_event_batch_whose_length_differs_from_the_ids_is_named():
    streamer = Streamer(mamba4rec())
    states = streamer.empty(["a", "b"])
    with pytest.raises(MDAFError, match=r"event field 'item': shape \(3,\) for 2 user id\(s\)"):
        streamer.update(states, ["a", "b"], {"item": torch.tensor([3, 4, 5])})


def test_a_negative_item_id_is_named():
    streamer = Streamer(mamba4rec())
    states = streamer.empty(["a", "b"])
    with pytest.raises(MDAFError, match="event field 'item': index -4 for user 'b'"):
        streamer.update(states, ["a", "b"], {"item": torch.tensor([3, -4])})


def test_a_missing_item_key_is_named():
    streamer = Streamer(mamba4rec())
    states = streamer.empty(["a"])
    with pytest.raises(MDAFError, match="event: missing field 'item'"):
        streamer.update(states, ["a"], {"cate": torch.tensor([3])})


def test_new_users_join_with_empty_states():
    streamer = Streamer(mamba4rec())
    states = folded(streamer, ["a"])
    before = states.out.clone()
    for u in ["b", "c", "d"]:  # the tensors grow past their first capacity
        states.add([u])
    assert states.ids == ["a", "b", "c", "d"] and torch.equal(states.out[0], before[0])
    assert not states.out[1:].any()
    fresh = folded(streamer, ["d"])
    streamer.update(states, ["d"], {"item": torch.tensor([5])})
    streamer.update(states, ["d"], {"item": torch.tensor([9])})
    out = streamer.update(states, ["d"], {"item": torch.tensor([13])})
    torch.testing.assert_close(out[0], fresh.out[0])
