"""The processed-dataset reader, history windows and the batch loader, on a small hand-built dataset."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from common.errors import MDAFError
from data_prep.dataset import ProcessedDataset
from data_prep.loader import BatchLoader
from data_prep.windows import gather, history_window

STATIC = {"user": "user", "item": "item", "cate": "cate", "hour": "hour"}
TIMELINES = {"behavior": {"cate": "cate", "brand": "brand", "btag": "btag"}, "click": {"item": "item"}}
VOCAB = {"user": 40, "item": 300, "cate": 30, "brand": 60, "btag": 6, "hour": 26}
T0 = 1_494_000_000


def write_dataset(root: Path, n_users: int = 30, seed: int = 0, synthetic: bool = True) -> Path:
    """Write a processed dataset (docs/data_format.md) with random users, timelines and samples.

    Users have 0 .. 120 behaviours (so some histories exceed L = 50) and some impressions come
    before a user's first behaviour (empty history). Returns `root`.
    """
    rng = np.random.default_rng(seed)
    users = np.arange(1000, 1000 + n_users, dtype=np.int64)
    # timelines: per user, sorted times, users' blocks one after another
    tl_times: dict[str, list[np.ndarray]] = {name: [] for name in TIMELINES}
    for name in TIMELINES:
        for u in range(n_users):
            count = 0 if u % 7 == 0 else int(rng.integers(0, 121 if name == "behavior" else 15))
            tl_times[name].append(np.sort(rng.integers(T0, T0 + 10 * 86_400, size=count)))
    blocks = {name: np.concatenate([[0], np.cumsum([len(t) for t in tl_times[name]])]) for name in TIMELINES}
    for name, fields in TIMELINES.items():
        folder = root / "timelines" / name
        folder.mkdir(parents=True)
        rows = int(blocks[name][-1])
        np.save(folder / "user_id.npy", np.repeat(users, [len(t) for t in tl_times[name]]))
        np.save(folder / "time.npy", np.concatenate(tl_times[name]).astype(np.int64))
        for field, space in fields.items():
            np.save(folder / f"{field}.npy", rng.integers(1, VOCAB[space], size=rows).astype(np.int32))

    (root / "samples").mkdir(parents=True)
    splits = {"train": (T0, T0 + 8 * 86_400), "val": (T0 + 8 * 86_400, T0 + 9 * 86_400),
              "test": (T0 + 9 * 86_400, T0 + 10 * 86_400)}
    n_rows = {"train": 157, "val": 41, "test": 40}
    for split, (lo, hi) in splits.items():
        n = n_rows[split]
        user_pos = rng.integers(0, n_users, size=n)
        # a tenth of the train impressions at the very start: before most users' first behaviour
        time = rng.integers(lo, hi, size=n).astype(np.int64)
        if split == "train":
            time[: n // 10] = lo
        cols: dict[str, np.ndarray] = {
            "label": rng.integers(0, 2, size=n).astype(np.int8),
            "time": time,
            "user_id": users[user_pos],
        }
        for field, space in STATIC.items():
            cols[field] = rng.integers(0, VOCAB[space], size=n).astype(np.int32)
        for name in TIMELINES:
            start = blocks[name][user_pos].astype(np.int64)
            before = np.array([np.searchsorted(tl_times[name][u], t, side="left") for u, t in zip(user_pos, time)])
            cols[f"{name}_start"] = start
            cols[f"{name}_end"] = start + before.astype(np.int64)
        if synthetic:
            cols["oracle_p"] = rng.random(n).astype(np.float32)
        frame = pl.DataFrame(cols).sort(["time", "user_id"])
        frame.write_parquet(root / "samples" / f"{split}.parquet")

    meta = {
        "schema_version": 2,
        "source": "taobao_ad",
        "synthetic": synthetic,
        "splits": {k: list(v) for k, v in splits.items()},
        "vocab_sizes": VOCAB,
        "static_fields": STATIC,
        "timelines": {name: {"rows": int(blocks[name][-1]), "fields": f} for name, f in TIMELINES.items()},
        "target_fields": {"item": "item", "cate": "cate"},
        "rows": n_rows,
    }
    (root / "meta.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> ProcessedDataset:
    return ProcessedDataset(write_dataset(tmp_path_factory.mktemp("ds") / "processed"))


def collect(loader: BatchLoader) -> dict[str, np.ndarray]:
    """All batches of one pass, concatenated along the batch axis, each window left-padded back to
    L (a batch's windows are only as wide as its longest history)."""
    batches = list(loader)
    assert len(batches) == len(loader)

    def full(x: torch.Tensor) -> np.ndarray:
        x = x.numpy()
        return np.pad(x, ((0, 0), (loader.seq_len - x.shape[1], 0))) if x.ndim == 2 else x

    return {k: np.concatenate([full(b[k]) for b in batches]) for k in batches[0]}


def naive_window(ds: ProcessedDataset, split: str, name: str, length: int) -> dict[str, np.ndarray]:
    """Reference: one sample at a time, in plain Python."""
    table, tl = ds.split(split), ds.timeline(name)
    fields = list(ds.timeline_fields(name))
    out = {k: np.zeros((len(table), length), dtype=np.int64) for k in [*fields, "time_gap"]}
    out["mask"] = np.zeros((len(table), length), dtype=bool)
    out["length"] = np.zeros(len(table), dtype=np.int64)
    for i in range(len(table)):
        history = list(range(int(table.start[name][i]), int(table.end[name][i])))[-length:]
        pad = length - len(history)
        out["length"][i] = len(history)
        for j, row in enumerate(history):
            out["mask"][i, pad + j] = True
            for f in fields:
                out[f][i, pad + j] = tl[f][row]
            out["time_gap"][i, pad + j] = table.time[i] - tl["time"][row]
    return out


@pytest.mark.parametrize("length", [1, 3, 50])
def test_windows_match_naive_reference(dataset, length):
    for split in ("train", "val"):
        got = collect(BatchLoader(dataset, split, seq_len=length, batch_size=16))
        for name in TIMELINES:
            want = naive_window(dataset, split, name, length)
            for key, value in want.items():
                np.testing.assert_array_equal(got[f"{name}_{key}"], value, err_msg=f"{split} {name}_{key} L={length}")
    # the data exercises both edge cases
    table = dataset.split("train")
    sizes = table.end["behavior"] - table.start["behavior"]
    assert (sizes == 0).any() and (sizes > 50).any()


def test_pads_are_the_front_positions_and_zero(dataset):
    got = collect(BatchLoader(dataset, "train", seq_len=50, batch_size=32))
    for name, fields in TIMELINES.items():
        mask, length = got[f"{name}_mask"], got[f"{name}_length"]
        expected_mask = np.arange(50)[None, :] >= (50 - length)[:, None]
        np.testing.assert_array_equal(mask, expected_mask)
        for key in [*fields, "time_gap"]:
            assert (got[f"{name}_{key}"][~mask] == 0).all()
            if key != "time_gap":  # the data's index values are >= 1, so 0 means pad only
                assert (got[f"{name}_{key}"][mask] > 0).all()


def test_time_gap_positive_at_real_positions(dataset):
    got = collect(BatchLoader(dataset, "test", seq_len=50, batch_size=8))
    for name in TIMELINES:
        gap, mask = got[f"{name}_time_gap"], got[f"{name}_mask"]
        assert mask.any()
        assert (gap[mask] > 0).all()
        # within a window, older behaviours have larger gaps
        rows_with_two = mask[:, -2]
        assert (gap[rows_with_two, -2] >= gap[rows_with_two, -1]).all()


def test_batch_keys_dtypes_shapes(dataset):
    loader = BatchLoader(dataset, "train", seq_len=5, batch_size=64, drop_last=True)
    batch = next(iter(loader))
    expected = {k: (torch.int64, (64,)) for k in STATIC}
    expected |= {"label": (torch.float32, (64,)), "time": (torch.int64, (64,)),
                 "user_id": (torch.int64, (64,)), "oracle_p": (torch.float32, (64,))}
    for name, fields in TIMELINES.items():
        w = min(5, max(1, int(batch[f"{name}_length"].max())))  # the batch's widest history, at most L
        expected |= {f"{name}_{f}": (torch.int64, (64, w)) for f in fields}
        expected |= {f"{name}_mask": (torch.bool, (64, w)), f"{name}_time_gap": (torch.int64, (64, w)),
                     f"{name}_length": (torch.int64, (64,))}
    assert set(batch) == set(expected)
    for key, (dtype, shape) in expected.items():
        assert batch[key].dtype == dtype and tuple(batch[key].shape) == shape, key
    # only the selected timelines, and no oracle_p when the data has none
    only = BatchLoader(dataset, "train", seq_len=5, batch_size=64, timelines=["click"])
    assert not any(k.startswith("behavior_") for k in next(iter(only)))
    assert len(only) == 3 and len(loader) == 2 and [len(b["label"]) for b in only] == [64, 64, 29]


def test_windows_are_as_wide_as_the_longest_history_in_the_batch(dataset):
    """Columns that would be padding in every row are not built: W = min(L, longest history)."""
    wide = BatchLoader(dataset, "train", seq_len=500, batch_size=16)
    for batch in wide:
        for name in TIMELINES:
            mask = batch[f"{name}_mask"]
            assert mask.shape[1] == min(500, max(1, int(batch[f"{name}_length"].max())))
            assert mask[:, -1].any() or not mask.any()  # the newest column is real somewhere
    narrow = collect(BatchLoader(dataset, "train", seq_len=3, batch_size=16))
    assert narrow["behavior_mask"].shape[1] == 3


def test_no_oracle_p_when_not_synthetic(tmp_path):
    ds = ProcessedDataset(write_dataset(tmp_path / "real", synthetic=False))
    assert "oracle_p" not in next(iter(BatchLoader(ds, "val", seq_len=3, batch_size=4)))


def test_shuffle_is_deterministic_per_seed_and_epoch(dataset):
    def order(seed: int, epoch: int) -> np.ndarray:
        loader = BatchLoader(dataset, "train", seq_len=3, batch_size=20, shuffle=True, seed=seed)
        loader.set_epoch(epoch)
        return loader.indices()

    a = order(7, 3)
    np.testing.assert_array_equal(a, order(7, 3))
    assert not np.array_equal(a, order(7, 4))
    assert not np.array_equal(a, order(8, 3))
    np.testing.assert_array_equal(np.sort(a), np.arange(len(dataset.split("train"))))
    # the batches follow the order
    loader = BatchLoader(dataset, "train", seq_len=3, batch_size=20, shuffle=True, seed=7)
    loader.set_epoch(3)
    np.testing.assert_array_equal(collect(loader)["time"], dataset.split("train").time[a])


def test_eval_sharding_covers_split_exactly_once(dataset):
    for split in ("train", "val"):  # 157 and 41 samples: odd sizes, no padding allowed
        n = len(dataset.split(split))
        shares = [BatchLoader(dataset, split, seq_len=3, batch_size=10, rank=r, world_size=2) for r in range(2)]
        idx = [s.indices() for s in shares]
        assert set(idx[0]).isdisjoint(idx[1])
        np.testing.assert_array_equal(np.concatenate(idx), np.arange(n))
        times = np.concatenate([collect(s)["time"] for s in shares])
        np.testing.assert_array_equal(times, dataset.split(split).time)


@pytest.mark.parametrize("drop_last", [False, True])
def test_train_sharding_equal_shares(dataset, drop_last):
    n = len(dataset.split("train"))  # 157: not a multiple of 2
    shares = [BatchLoader(dataset, "train", seq_len=3, batch_size=16, shuffle=True, seed=1, drop_last=drop_last,
                          rank=r, world_size=2) for r in range(2)]
    for s in shares:
        s.set_epoch(2)
    idx = [s.indices() for s in shares]
    assert len(idx[0]) == len(idx[1]) and len(shares[0]) == len(shares[1])
    together = np.concatenate(idx)
    if drop_last:
        assert len(together) == n - 1 and len(np.unique(together)) == n - 1
    else:
        assert len(together) == n + 1 and len(np.unique(together)) == n
    assert sum(len(b["label"]) for b in shares[0]) == len(idx[0]) - (len(idx[0]) % 16 if drop_last else 0)


def test_history_window_and_gather_directly():
    rows, mask = history_window(np.array([5, 3, 0]), np.array([8, 3, 10]), 4)
    np.testing.assert_array_equal(mask, [[False, True, True, True], [False] * 4, [True] * 4])
    np.testing.assert_array_equal(rows[mask], [5, 6, 7, 6, 7, 8, 9])
    column = np.arange(100, 110)
    np.testing.assert_array_equal(gather(column, rows, mask), [[0, 105, 106, 107], [0] * 4, [106, 107, 108, 109]])
    # an empty timeline: every position is a pad
    rows, mask = history_window(np.zeros(2, np.int64), np.zeros(2, np.int64), 3)
    assert not mask.any()
    assert gather(np.zeros(0, np.int32), rows, mask, np.int64).tolist() == [[0, 0, 0]] * 2


def test_errors_name_the_file_and_key(tmp_path, dataset):
    with pytest.raises(MDAFError, match="meta.json") as err:
        ProcessedDataset(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / "meta.json") in str(err.value)

    broken = write_dataset(tmp_path / "broken")
    meta = json.loads((broken / "meta.json").read_text())
    del meta["static_fields"]
    (broken / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(MDAFError, match="static_fields"):
        ProcessedDataset(broken)
    meta["static_fields"], meta["schema_version"] = STATIC, 3
    (broken / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(MDAFError, match="schema_version"):
        ProcessedDataset(broken)

    with pytest.raises(MDAFError, match=r"available: \['test', 'train', 'val'\]"):
        dataset.split("valid")
    with pytest.raises(MDAFError, match="seq_len"):
        BatchLoader(dataset, "train", seq_len=0, batch_size=8)
    with pytest.raises(MDAFError, match="no timeline 'views'"):
        BatchLoader(dataset, "train", seq_len=4, batch_size=8, timelines=["views"])


def test_dataset_caches_and_memory_maps(dataset):
    assert dataset.split("val") is dataset.split("val")
    tl = dataset.timeline("behavior")
    assert tl is dataset.timeline("behavior")
    assert isinstance(tl["cate"], np.memmap)
    assert dataset.static_fields == STATIC and dataset.vocab_sizes == VOCAB
    assert dataset.timeline_fields("behavior") == TIMELINES["behavior"]
