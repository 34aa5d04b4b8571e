"""The scoring service (serving/, experiments/serve.py) in process: /score equals predict.py on
the same rows, streamed scores and recommendations equal a recompute over the same history, the
run's masking rules, one forward pass for concurrent requests, bounded windows, and a 4xx naming
the field for each kind of bad request."""
from __future__ import annotations

import threading

import numpy as np
import polars as pl
import pytest
import torch
from fastapi.testclient import TestClient

from data_prep.loader import batch_key
from serving.app import create_app
from serving.config import ServeConfig
from serving.service import Service
from serving.store import Window
from serving_runs import (CTR_TRAIN, NEXT_TRAIN, STREAMING_MDAF, TINY_MDAF, raw_impressions, sequences,
                          timeline_events, train)
from training.predict import predict

PROFILE = ["cms_segid", "cms_group_id", "final_gender_code", "age_level", "pvalue_level", "shopping_level",
           "occupation", "new_user_class_level"]
AD = ["item", "cate", "brand", "campaign", "customer", "price"]


@pytest.fixture(scope="module")
def runs(tiny_dataset, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("serving_runs")
    seq = sequences(root / "sequences")
    return {"ctr": train(root, "mdaf", TINY_MDAF, tiny_dataset, "taobao_ad", CTR_TRAIN),
            "ctr_stream": train(root, "mdaf_stream", STREAMING_MDAF, tiny_dataset, "taobao_ad",
                                {**CTR_TRAIN, "seq_len": 100}),
            "next": train(root, "mamba4rec", {"base": "configs/model/mamba4rec.yaml", "hidden": 16, "d_state": 8},
                          seq, "next_item", NEXT_TRAIN),
            "next_masked": train(root, "sasrec", {"base": "configs/model/sasrec.yaml", "hidden": 16, "inner": 32},
                                 seq, "next_item", NEXT_TRAIN, ranking={"mask_history": True}),
            "sequences": seq}


def client(run, tmp_path, **config) -> TestClient:
    return TestClient(create_app(Service(run, ServeConfig(state_dir=str(tmp_path / "state"), **config))))


def post_history(c: TestClient, dataset, user: int) -> None:
    for timeline in dataset.timeline_names:
        events = timeline_events(dataset, timeline, user)
        if events:
            assert c.post("/events", json={"user": user, "events": events}).status_code == 200


def ctr_request(impression: dict) -> dict:
    """A /score request of one raw impression (user, time, pid, profile, the ad)."""
    context = {"time": impression["time"], "pid": impression["pid"], **{f: impression[f] for f in PROFILE}}
    return {"user": impression["user"], "context": context, "candidates": [{f: impression[f] for f in AD}]}


def test_score_equals_predict_py_on_the_same_rows(runs, tiny_dataset, tmp_path):
    offline = pl.read_parquet(predict(runs["ctr"], ["test"], out=tmp_path / "p.parquet"))
    test = tiny_dataset.split("test")
    raw = raw_impressions(tiny_dataset)
    users = np.unique(test.user_id)[:4]
    rows = np.flatnonzero(np.isin(test.user_id, users))
    with client(runs["ctr"], tmp_path, window=1000) as c:  # every event, so samples in the past read theirs
        for user in users:
            post_history(c, tiny_dataset, int(user))
        for r in rows:
            match = raw.filter((pl.col("user") == test.user_id[r]) & (pl.col("time") == test.time[r]) &
                               (pl.col("item") == test.raw["item"][r]))
            reply = c.post("/score", json=ctr_request(match.row(0, named=True))).json()
            assert reply["p"][0] == pytest.approx(float(offline["p"][int(r)]), abs=1e-6)
            assert reply["logit"][0] == pytest.approx(float(offline["logit"][int(r)]), abs=1e-6)
    assert len(rows) >= 10 and offline["p"].std() > 0.001  # a real spread of scores, not one constant


def test_streamed_ctr_scores_equal_a_recompute_over_the_window(runs, tiny_dataset, tmp_path):
    test = tiny_dataset.split("test")
    raw = raw_impressions(tiny_dataset)
    users = np.unique(test.user_id)[:3]
    replies = {}
    for streaming in (True, False):
        with client(runs["ctr_stream"], tmp_path / str(streaming), streaming=streaming) as c:
            assert c.get("/run").json()["streaming"] is streaming
            for user in users:
                post_history(c, tiny_dataset, int(user))
                assert c.get(f"/users/{user}").json()["streamed"] is streaming
            last = {int(u): max(e["time"] for e in timeline_events(tiny_dataset, "behavior", int(u))) for u in users}
            samples = raw.filter(pl.col("user").is_in(users.tolist())).head(12).rows(named=True)
            # after every event: the state holds them all (times before the sample's are required)
            replies[streaming] = [c.post("/score", json=ctr_request({**s, "time": last[s["user"]] + 60})).json()["p"][0]
                                  for s in samples]
    np.testing.assert_allclose(replies[True], replies[False], atol=1e-5)


def test_streamed_recommendations_equal_a_full_recompute(runs, tmp_path):
    dataset = runs["sequences"]
    service = Service(runs["next"], ServeConfig(state_dir=str(tmp_path / "s2")))
    model = service.scorer.model
    with TestClient(create_app(service)) as c:
        histories: dict[int, list] = {}
        for user in (0, 1, 2):
            for event in timeline_events(dataset, "history", user)[:12]:
                assert c.post("/events", json={"user": user, "events": [event]}).status_code == 200
                histories.setdefault(user, []).append(event["item"])
                reply = c.post("/recommend", json={"user": user, "k": 5}).json()
                index = torch.tensor([[service.scorer.features.index("item", i) for i in histories[user]]])
                with torch.no_grad():
                    full = model(({batch_key("history", "item"): index,
                                   batch_key("history", "mask"): index > 0})).logit[0]
                full[:2] = float("-inf")
                top = torch.topk(full, 5)
                assert reply["items"] == [service.scorer.items[int(i) - 2] for i in top.indices]
                np.testing.assert_allclose(reply["scores"], top.values.numpy(), atol=1e-5)


def test_recommendations_follow_the_runs_masking_rules(runs, tmp_path):
    dataset = runs["sequences"]
    with client(runs["next_masked"], tmp_path) as c:
        events = timeline_events(dataset, "history", 3)[:10]
        c.post("/events", json={"user": 3, "events": events})
        reply = c.post("/recommend", json={"user": 3, "k": 100}).json()
    seen = {e["item"] for e in events}
    assert not seen & set(reply["items"])  # the run masked the history
    assert len(reply["items"]) == dataset.meta["vocab_sizes"]["item"] - 2 - len(seen)  # every other item, once


def test_concurrent_requests_share_one_forward_pass(runs, tiny_dataset, tmp_path):
    raw = raw_impressions(tiny_dataset).head(6).rows(named=True)
    with client(runs["ctr"], tmp_path, batch_wait_ms=300) as c:
        alone = [c.post("/score", json=ctr_request(s)).json()["p"] for s in raw]
        before = c.get("/health").json()["forward_passes"]
        together: list = [None] * len(raw)

        def ask(k: int) -> None:
            together[k] = c.post("/score", json=ctr_request(raw[k])).json()["p"]

        threads = [threading.Thread(target=ask, args=(k,)) for k in range(len(raw))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        passes = c.get("/health").json()["forward_passes"] - before
    assert passes < len(raw)
    np.testing.assert_allclose(np.concatenate(together), np.concatenate(alone), atol=1e-6)


def test_a_window_keeps_the_newest_events_of_a_user():
    rng = np.random.default_rng(0)
    window, reference = Window(2, 7), []
    for _ in range(60):
        rows = rng.integers(0, 100, size=(int(rng.integers(1, 12)), 2))
        window.append(rows)
        reference = (reference + rows.tolist())[-7:]
        assert window.rows().tolist() == reference
    assert len(window.buf) <= 2 * 7 + 11


# ----- bad requests: a 4xx naming the field, and the service keeps serving -----
@pytest.fixture(scope="module")
def ctr_client(runs, tmp_path_factory):
    with client(runs["ctr"], tmp_path_factory.mktemp("bad"), max_candidates=3) as c:
        yield c


@pytest.fixture(scope="module")
def next_client(runs, tmp_path_factory):
    with client(runs["next"], tmp_path_factory.mktemp("bad_next")) as c:
        yield c


CANDIDATE = {"item": 1, "cate": 2}


@pytest.mark.parametrize("body, status, named", [
    (b'{"user": 5, "candidates": [', 422, "body: malformed JSON"),
    ({"user": 5}, 422, "candidates: Field required"),
    ({"user": 5, "candidates": [{**CANDIDATE, "colour": "red"}]}, 422, "candidates.0.colour: Extra inputs"),
    ({"user": "five", "candidates": [CANDIDATE]}, 422, "user: Input should be a valid integer"),
    ({"user": 5, "candidates": [{**CANDIDATE, "price": "cheap"}]}, 422, "candidates.0.price: Input should be"),
    ({"user": 5, "candidates": []}, 422, "candidates: List should have at least 1 item"),
    ({"user": 5, "candidates": [CANDIDATE] * 4}, 422, "candidates: List should have at most 3 items"),
    ({"user": 5, "context": {"cate": 3}, "candidates": [CANDIDATE]}, 422, "candidates.0.cate: also given in context"),
], ids=["malformed_json", "missing_field", "unknown_field", "wrong_type_id", "wrong_type_price", "no_candidates",
        "too_many_candidates", "field_twice"])
def test_a_bad_score_request_is_a_4xx_naming_the_field(ctr_client, body, status, named):
    reply = (ctr_client.post("/score", content=body, headers={"content-type": "application/json"})
             if isinstance(body, bytes) else ctr_client.post("/score", json=body))
    assert reply.status_code == status and reply.json()["error"].startswith(named)
    assert ctr_client.get("/health").status_code == 200


@pytest.mark.parametrize("endpoint, body, named", [
    ("/recommend", {"user": 5, "k": 3}, "POST /recommend: this run (mdaf) serves click-through rate"),
], ids=["recommend_on_a_ctr_run"])
def test_the_other_tasks_endpoint_names_the_task_a_ctr_run_serves(ctr_client, endpoint, body, named):
    reply = ctr_client.post(endpoint, json=body)
    assert reply.status_code == 400 and reply.json()["error"].startswith(named)


def test_score_on_a_next_item_run_names_the_task_it_serves(next_client):
    reply = next_client.post("/score", json={"user": 1, "candidates": [CANDIDATE]})
    assert reply.status_code == 400
    assert reply.json()["error"] == "POST /score: this run (mamba4rec) serves next-item recommendation (POST /recommend)"


@pytest.mark.parametrize("body, named", [
    ({"user": 1, "k": "ten"}, "k: Input should be a valid integer"),
    ({"user": 1, "k": 0}, "k: Input should be greater than or equal to 1"),
    ({"user": [1]}, "user: Input should be a valid integer"),
], ids=["wrong_type_k", "k_below_1", "wrong_type_user"])
def test_a_bad_recommend_request_is_a_422_naming_the_field(next_client, body, named):
    reply = next_client.post("/recommend", json=body)
    assert reply.status_code == 422 and reply.json()["error"].startswith(named)


@pytest.mark.parametrize("events, named", [
    ([{"time": 5}], "events.0.item: Field required"),
    ([{"item": "3", "time": 5, "rating": 4}], "events.0.rating: Extra inputs"),
    ([{"item": "3", "time": 9}, {"item": "4", "time": 8}], "events.1.time: 8 is before the event above it"),
    ([{"item": "3", "time": 5, "timeline": "clicks"}], "events.0.timeline: 'clicks'"),
    ([], "events: List should have at least 1 item"),
], ids=["missing_item", "unknown_field", "out_of_order", "unknown_timeline", "no_events"])
def test_a_bad_events_request_is_a_422_naming_the_field(next_client, events, named):
    reply = next_client.post("/events", json={"user": "bad", "events": events})
    assert reply.status_code == 422 and reply.json()["error"].startswith(named)


def test_an_event_older_than_the_users_newest_is_refused(next_client):
    assert next_client.post("/events", json={"user": "late", "events": [{"item": "3", "time": 100}]}).status_code == 200
    reply = next_client.post("/events", json={"user": "late", "events": [{"item": "4", "time": 99}]})
    assert reply.status_code == 422
    assert reply.json()["error"].startswith("events.0.time: 99 is before the user's newest event on timeline 'history'")
    assert next_client.get("/users/late").json()["seen"] == {"history": 1}  # nothing of the refused request kept


def test_an_internal_error_fails_one_request_and_the_service_keeps_serving(runs, tmp_path, monkeypatch):
    service = Service(runs["next"], ServeConfig(state_dir=str(tmp_path / "state")))
    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        real = service.scorer.recommend
        monkeypatch.setattr(service.scorer, "recommend", lambda *a: 1 / 0)
        reply = c.post("/recommend", json={"user": 1})
        assert reply.status_code == 500 and "ZeroDivisionError" in reply.json()["error"]
        monkeypatch.setattr(service.scorer, "recommend", real)
        assert c.post("/recommend", json={"user": 1}).status_code == 200
