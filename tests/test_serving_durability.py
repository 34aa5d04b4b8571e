"""The service loses no acknowledged event: events sent under load to `experiments/serve.py`, a
SIGKILL at a random moment, a restart (the last snapshot, then the log after it), and every
event that got a 200 is in its user's window and state."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import yaml

from data_prep.dataset import ProcessedDataset
from data_prep.loader import batch_key
from serving.features import Features
from serving.wal import SNAPSHOT, read_log
from serving_runs import NEXT_TRAIN, sequences, timeline_events, train
from training.predict import run_config, trained_model

REPO = Path(__file__).resolve().parents[1]
USERS, EVENTS = 4, 25  # events per user: within the run's window (seq_len 30), so the window holds them all


@pytest.fixture(scope="module")
def next_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("durability")
    return train(root, "mamba4rec", {"base": "configs/model/mamba4rec.yaml", "hidden": 16, "d_state": 8},
                 sequences(root / "sequences"), "next_item", NEXT_TRAIN)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(run: Path, config: Path, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "experiments/serve.py", "--run", str(run), "--port", str(port),
                             "--config", str(config)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the service did not start in 120 s")


def test_no_acknowledged_event_is_lost_to_a_sigkill(next_run, tmp_path):
    state = tmp_path / "state"
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(state), "snapshot_every_s": 0.3, "threads": 1}))
    dataset = ProcessedDataset(run_config(next_run)["data"]["prepared_dir"])
    items = [e["item"] for e in timeline_events(dataset, "history", 0)]
    port = free_port()
    proc = start(next_run, config, port, tmp_path / "serve.log")
    acked: dict[int, list] = {u: [] for u in range(USERS)}

    def send(user: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
            for k in range(EVENTS):
                event = {"item": items[(user + k) % len(items)], "time": 1000 + k}
                try:
                    if c.post("/events", json={"user": user, "events": [event]}).status_code == 200:
                        acked[user].append(event)
                except httpx.HTTPError:  # the service was killed
                    return

    threads = [threading.Thread(target=send, args=(u,)) for u in range(USERS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while not ((state / SNAPSHOT).is_file() and sum(map(len, acked.values())) >= USERS * EVENTS // 2):
        assert time.monotonic() < deadline, "no snapshot and half the events in 60 s"
        time.sleep(0.01)
    time.sleep(np.random.default_rng().uniform(0, 0.2))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for t in threads:
        t.join()
    snapshot_seq = int(yaml.safe_load((state / SNAPSHOT).read_text())["seq"])
    assert snapshot_seq > 0 and read_log(state, snapshot_seq)  # the restart replays a log after a snapshot

    proc = start(next_run, config, port, tmp_path / "serve.log")
    try:
        features = Features(dataset)
        model = trained_model(next_run, run_config(next_run), "best", dataset, torch.device("cpu")).eval()
        for user, events in acked.items():
            reply = httpx.get(f"http://127.0.0.1:{port}/users/{user}").json()
            rows = reply["windows"]["history"]["rows"]
            assert rows[:len(events)] == [[e["time"], features.index("item", e["item"])] for e in events]
            # the state holds exactly the window's events: its scores are the full forward's over them
            index = torch.tensor([[r[1] for r in rows]])
            with torch.no_grad():
                full = model({batch_key("history", "item"): index, batch_key("history", "mask"): index > 0}).logit[0]
            recommended = httpx.post(f"http://127.0.0.1:{port}/recommend", json={"user": user, "k": 5}).json()
            np.testing.assert_allclose(recommended["scores"], full[2:].sort(descending=True).values[:5], atol=1e-5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert sum(map(len, acked.values())) >= USERS * EVENTS // 2
