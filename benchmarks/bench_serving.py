"""The scoring service (experiments/serve.py) on 127.0.0.1: latency and throughput, and durability.

    python benchmarks/bench_serving.py --ctr-run results/mdaf-seed0 --next-run results/mamba4rec_all-seed0
    (the next-item run of a streaming model, e.g. train_mamba4rec.py --config configs/experiments/mamba4rec_all.yaml:
    the default, MambaRec, has attention, which does not stream)
    python benchmarks/bench_serving.py --ctr-run R1 --next-run R2 --quick    # fewer requests, 3 kills; no file

Every phase is bounded by a number of requests and a time limit. The service runs in its own
process on 127.0.0.1 only (state in a temporary directory); the load comes from client threads in
this process (httpx, one connection each), so figures include the client's time, on the same cores.
1. Scoring, a CTR run (MDAF's default recomputes from the window: its target attention and match
   features read the candidate): one user's request for 1 and 100 candidates, from 1 client and
   from 16 concurrent clients; users hold `--history` events per timeline.
2. A streaming next-item run (Mamba4Rec), users with 1,000-event histories (the service's window
   and seq_len 1,000): /recommend from the user's state against recomputing from the window, and
   /events of one event with streaming (append, `step`, log) against without (append, log). The
   ratio that matters: recomputing the 1,000-event window against a streamed event update.
3. Durability: 20 SIGKILLs at random moments while 4 clients send events, a restart after each
   (the last snapshot, then the log after it); the events that got a 200 and are missing after.
Baselines measured in the same run: a bare append and fsync on the state directory's disk (what an
acknowledged event cannot go below), and the model's work alone, in this process, without HTTP.
Writes benchmarks/results/bench_serving.md (not with --quick).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch
import yaml

from measure import RunStart, argument_parser, publish

from data_prep.dataset import ProcessedDataset
from data_prep.vocab import Vocab
from serving.config import ServeConfig
from serving.features import Features
from serving.scorer import Ranking, RunScorer
from serving.store import UserStore
from training.predict import run_config

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "bench_serving.md"
CLIENTS = 16
LONG = 1000  # the next-item window: events per user
T0 = 1_494_000_000
TARGETS = {"score_p99_ms": 25.0, "candidates_per_s": 2000.0, "event_p99_ms": 3.0, "event_speedup": 20.0}


class Server:
    """experiments/serve.py for `run` on a free port of 127.0.0.1, with serve settings `config`."""

    def __init__(self, run: Path, config: dict, work: Path, name: str):
        self.run, self.work = run, work
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.config = work / f"{name}.yaml"
        self.config.write_text(yaml.safe_dump({"state_dir": str(work / f"{name}-state"), **config}))
        self.log = work / f"{name}.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start and wait for /health; returns the seconds it took."""
        began = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "experiments/serve.py", "--run", str(self.run), "--port",
                                      str(self.port), "--config", str(self.config)], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        while time.perf_counter() - began < 300:
            if self.proc.poll() is not None:
                raise SystemExit(f"the service stopped: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return time.perf_counter() - began
            except httpx.HTTPError:
                time.sleep(0.05)
        raise SystemExit("the service did not start in 300 s")

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def load(url: str, path: str, bodies: list[dict], clients: int, requests: int, seconds: float
         ) -> tuple[np.ndarray, float]:
    """Send `requests` POSTs (bodies in turn) from `clients` threads, within `seconds`; returns the
    latencies (s) and the wall time. Every reply must be a 200."""
    latencies: list[float] = []
    taken = iter(range(requests))
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while time.perf_counter() < deadline:
                with lock:
                    k = next(taken, None)
                if k is None:
                    return
                began = time.perf_counter()
                reply = c.post(path, json=bodies[k % len(bodies)])
                if reply.status_code != 200:
                    raise SystemExit(f"{path}: {reply.status_code} {reply.text[:300]}")
                with lock:
                    latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return np.asarray(latencies), time.perf_counter() - began


def row(what: str, latencies: np.ndarray, wall: float, per_request: int = 1) -> dict:
    return {"what": what, "n": len(latencies), "p50": 1e3 * float(np.percentile(latencies, 50)),
            "p99": 1e3 * float(np.percentile(latencies, 99)), "rps": len(latencies) / wall,
            "items_s": per_request * len(latencies) / wall}


class Known:
    """Raw ids the run's vocabularies know, drawn at random."""

    def __init__(self, dataset: ProcessedDataset, rng: np.random.Generator):
        self.dataset, self.rng, self.raw = dataset, rng, {}

    def __call__(self, space: str, n: int | None = None):
        if space not in self.raw:
            self.raw[space] = Vocab.load(self.dataset.root / "vocab", space).raw.to_list()
        picked = [self.raw[space][int(i)] for i in self.rng.integers(0, len(self.raw[space]), n or 1)]
        return picked if n is not None else picked[0]


def ctr_phase(run: Path, work: Path, history: int, requests: int, seconds: float, threads: int) -> list[dict]:
    dataset = ProcessedDataset(run_config(run)["data"]["prepared_dir"])
    features = Features(dataset)
    rng = np.random.default_rng(0)
    known = Known(dataset, rng)
    server = Server(run, {"window": history, "threads": threads}, work, "ctr")
    server.start()
    users = known("user", 32)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        for user in users:
            for timeline, fields in features.timelines.items():
                events = [{"timeline": timeline, "time": T0 + k, **{f: known(s) for f, s in fields.items()}}
                          for k in range(history)]
                assert c.post("/events", json={"user": user, "events": events}).status_code == 200
    ad = [f for f in ("item", "cate", "brand", "campaign", "customer") if f in features.static]
    shared = [f for f in features.static if f not in ("user", *ad)]

    def request(user, n: int) -> dict:
        candidates = [{f: known(features.static[f]) for f in ad}
                      | ({"price": float(rng.uniform(1, 500))} if "price" in features.derived else {})
                      for _ in range(n)]
        context = {"time": T0 + history + 10, **{f: known(features.static[f]) for f in shared}}
        return {"user": user, "context": context, "candidates": candidates}

    rows = []
    for n in (1, 100):
        bodies = [request(u, n) for u in users]
        load(server.url, "/score", bodies, 1, 20, seconds)  # warm-up
        for clients in (1, CLIENTS):
            lat, wall = load(server.url, "/score", bodies, clients, requests, seconds)
            rows.append(row(f"/score, {n} candidate(s), {clients} client(s)", lat, wall, n))
    server.stop()
    return rows


def next_phase(run: Path, work: Path, users: int, requests: int, seconds: float, threads: int
               ) -> tuple[list[dict], dict]:
    known = Known(ProcessedDataset(run_config(run)["data"]["prepared_dir"]), np.random.default_rng(1))
    rows, p50 = [], {}
    for streaming in (True, False):
        name = "streaming" if streaming else "recompute"
        server = Server(run, {"window": LONG, "seq_len": LONG, "streaming": streaming, "max_events": LONG, "threads": threads},
                        work, f"next-{name}")
        server.start()
        ids = [f"u{k}" for k in range(users)]
        with httpx.Client(base_url=server.url, timeout=120) as c:
            for user in ids:
                events = [{"item": item, "time": T0 + k} for k, item in enumerate(known("item", LONG))]
                assert c.post("/events", json={"user": user, "events": events}).status_code == 200
        bodies = [{"user": u, "k": 10} for u in ids]
        load(server.url, "/recommend", bodies, 1, 10, seconds)
        for clients in (1, CLIENTS):
            lat, wall = load(server.url, "/recommend", bodies, clients, requests, seconds)
            rows.append(row(f"/recommend, {LONG}-event history, {name}, {clients} client(s)", lat, wall))
            p50[("recommend", streaming, clients)] = rows[-1]
        clock = iter(range(T0 + LONG, T0 + LONG + 10 * requests))
        items = known("item", 64)
        for clients in (1, CLIENTS):
            bodies = [{"user": ids[k % users], "events": [{"item": items[k % 64], "time": next(clock)}]}
                      for k in range(requests)]
            lat, wall = load(server.url, "/events", bodies, clients, requests, seconds)
            rows.append(row(f"/events, 1 event, {name}, {clients} client(s)", lat, wall))
            p50[("events", streaming, clients)] = rows[-1]
        server.stop()
    return rows, p50


def fsync_floor(directory: Path, appends: int = 300) -> tuple[float, float]:
    """(p50, p99) ms of appending a 100-byte line to a file in `directory` and fsyncing it: the
    least an acknowledged event can cost on this disk (serving/wal.py does the same per group)."""
    times = []
    with open(directory / "fsync-probe", "ab") as fh:
        for _ in range(appends):
            began = time.perf_counter()
            fh.write(b"x" * 99 + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
            times.append(time.perf_counter() - began)
    return 1e3 * float(np.percentile(times, 50)), 1e3 * float(np.percentile(times, 99))


def model_work(run: Path, users: int, threads: int) -> dict:
    """In this process, no HTTP: ms to recompute `users` users' output over their LONG-event windows,
    to fold one event into each user's state, and to score from the states (median of 20)."""
    torch.set_num_threads(threads)
    plain = RunScorer(run, ServeConfig(seq_len=LONG, window=LONG, streaming=False))
    streamed = RunScorer(run, ServeConfig(seq_len=LONG, window=LONG))
    known = Known(plain.dataset, np.random.default_rng(3))
    stores = {s: UserStore(s.columns, LONG, s.streamer, s.stream_timeline) for s in (plain, streamed)}
    ids = [f"w{k}" for k in range(users)]
    for user in ids:
        events = [{"item": item, "time": T0 + k} for k, item in enumerate(known("item", LONG))]
        rows = plain.features.encode_events("history", events)
        for store in stores.values():
            store.append(user, "history", rows)
        stores[streamed].fold([(user, {"item": rows[:, 1]})])
    rankings = [Ranking(u, 10, T0 + LONG) for u in ids]
    event = [(u, {"item": rows[:1, 1]}) for u in ids]  # one more of the items above

    def median_ms(fn) -> float:
        fn()
        times = []
        for _ in range(20):
            began = time.perf_counter()
            fn()
            times.append(time.perf_counter() - began)
        return 1e3 * float(np.median(times))

    return {"recompute": median_ms(lambda: plain.recommend(rankings, stores[plain])),
            "step": median_ms(lambda: stores[streamed].fold(event)),
            "from_state": median_ms(lambda: streamed.recommend(rankings, stores[streamed]))}


def kill_phase(run: Path, work: Path, kills: int, rng: np.random.Generator, threads: int) -> dict:
    """SIGKILLs under load (module doc); the acknowledged events missing after each restart."""
    dataset = ProcessedDataset(run_config(run)["data"]["prepared_dir"])
    features = Features(dataset)
    server = Server(run, {"window": LONG, "snapshot_every_s": 0.5, "threads": threads}, work, "kill")
    restart = [server.start()]
    items = Known(dataset, rng)("item", 64)
    acked: dict[str, list[list[int]]] = {f"k{u}": [] for u in range(64)}
    stop = threading.Event()
    failures = [0]

    def client(users: list[str]) -> None:
        clock = T0
        with httpx.Client(timeout=10) as c:
            while not stop.is_set():
                for user in users:
                    clock += 1
                    event = {"item": items[clock % 64], "time": clock}
                    while not stop.is_set():  # resend until acknowledged: the service may be down
                        try:
                            reply = c.post(server.url + "/events", json={"user": user, "events": [event]})
                        except httpx.HTTPError:
                            failures[0] += 1
                            time.sleep(0.05)
                            continue
                        if reply.status_code == 200:
                            acked[user].append([clock, features.index("item", event["item"])])
                        break

    names = list(acked)
    threads = [threading.Thread(target=client, args=(names[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    for _ in range(kills):
        time.sleep(float(rng.uniform(0.3, 2.0)))
        server.kill()
        restart.append(server.start())
    stop.set()
    for t in threads:
        t.join()
    lost = 0
    with httpx.Client(base_url=server.url, timeout=60) as c:
        for user, events in acked.items():
            rows = iter(c.get(f"/users/{user}").json()["windows"]["history"]["rows"])
            lost += sum(1 for e in events if e not in rows)  # in order: the acknowledged ones, a subsequence
    server.stop()
    return {"kills": kills, "acked": sum(map(len, acked.values())), "lost": lost, "refused_while_down": failures[0],
            "restart_s": float(np.median(restart[1:]))}


def report(ctr: list[dict], nxt: list[dict], p50: dict, work: dict, floor: tuple[float, float], kills: dict, args,
           start: RunStart) -> str:
    lines = ["# bench_serving: the scoring service on 127.0.0.1 (experiments/serve.py)", "",
             *start.header(args.threads), "",
             f"CTR run: `{args.ctr_run}` ({run_config(args.ctr_run)['model']['name']}); next-item run: "
             f"`{args.next_run}` ({run_config(args.next_run)['model']['name']}).", "",
             "| request | n | p50 ms | p99 ms | requests/s | candidates or events/s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['what']} | {r['n']} | {r['p50']:.2f} | {r['p99']:.2f} | {r['rps']:.0f} | {r['items_s']:.0f} |"
              for r in [*ctr, *nxt]]
    score100 = next(r for r in ctr if r["what"] == "/score, 100 candidate(s), 1 client(s)")
    busy100 = next(r for r in ctr if r["what"] == f"/score, 100 candidate(s), {CLIENTS} client(s)")
    event = p50[("events", True, 1)]
    recompute = p50[("recommend", False, 1)]
    streamed = p50[("recommend", True, 1)]
    speedup = recompute["p50"] / event["p50"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines += ["", "Ratios (p50, 1 client):",
              f"- recomputing a {LONG}-event window (/recommend without streaming, {recompute['p50']:.2f} ms) against "
              f"a streamed event update (/events with streaming, {event['p50']:.2f} ms): {speedup:.1f}x",
              f"- /recommend from the state against recomputing the window: "
              f"{recompute['p50'] / streamed['p50']:.1f}x faster",
              f"- /events with streaming against without (the `step` it adds): "
              f"{event['p50'] / p50[('events', False, 1)]['p50']:.2f}x the time",
              f"- a bare append and fsync of one line on the state directory's disk (the floor of an "
              f"acknowledged event): p50 {floor[0]:.2f} ms, p99 {floor[1]:.2f} ms; a streamed event update "
              f"costs {event['p50'] / floor[0]:.1f}x its p50", "",
              "The model's work alone (in process, no HTTP, no log; median ms):", "",
              "| users | recompute over the window | fold one event (`step`) | score from the state | recompute / step |",
              "|---|---|---|---|---|"]
    lines += [f"| {n} | {w['recompute']:.2f} | {w['step']:.3f} | {w['from_state']:.2f} | "
              f"{w['recompute'] / w['step']:.0f}x |" for n, w in work.items()]
    lines += ["",
              "Targets:",
              f"- /score of 100 candidates, p99 at most {TARGETS['score_p99_ms']:g} ms: "
              f"{verdict(score100['p99'] <= TARGETS['score_p99_ms'])} ({score100['p99']:.1f} ms)",
              f"- at least {TARGETS['candidates_per_s']:,.0f} candidates/s under {CLIENTS} clients: "
              f"{verdict(busy100['items_s'] >= TARGETS['candidates_per_s'])} ({busy100['items_s']:,.0f})",
              f"- a streamed event update, p99 at most {TARGETS['event_p99_ms']:g} ms: "
              f"{verdict(event['p99'] <= TARGETS['event_p99_ms'])} ({event['p99']:.2f} ms)",
              f"- at least {TARGETS['event_speedup']:g}x faster than recomputing a {LONG}-event window: "
              f"{verdict(speedup >= TARGETS['event_speedup'])} ({speedup:.1f}x)",
              f"- no acknowledged event lost across {kills['kills']} SIGKILLs under load: "
              f"{verdict(kills['lost'] == 0)} ({kills['lost']} lost of {kills['acked']:,} acknowledged; "
              f"{kills['refused_while_down']:,} sends refused while the service was down and sent again; "
              f"median restart {kills['restart_s']:.1f} s, Python and torch start included)", "",
              f"ms: client-side latency of one request (the client shares the machine's cores). An event reply "
              f"waits for the fsync of its log line (serving/wal.py). Requests per phase: at most {args.requests}, "
              f"within {args.seconds:g} s."]
    return "\n".join(lines)


def main() -> None:
    parser = argument_parser(__doc__, "fewer requests and 3 kills", "nothing")
    parser.add_argument("--ctr-run", type=Path, required=True, help="a finished CTR run (results/<run>)")
    parser.add_argument("--next-run", type=Path, required=True, help="a finished next-item run of a streaming model")
    parser.add_argument("--requests", type=int, default=400, help="requests per phase at most (default 400)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per phase at most (default 30)")
    parser.add_argument("--history", type=int, default=50, help="CTR: events per user and timeline (default 50)")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.seconds = 60, 10.0
    start = RunStart()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ctr = ctr_phase(args.ctr_run, work, args.history, args.requests, args.seconds, args.threads)
        nxt, p50 = next_phase(args.next_run, work, 8 if args.quick else 32, args.requests, args.seconds, args.threads)
        kills = kill_phase(args.next_run, work, 3 if args.quick else 20, np.random.default_rng(2), args.threads)
        floor = fsync_floor(work)
    alone = {n: model_work(args.next_run, n, args.threads) for n in (1, CLIENTS)}
    publish(report(ctr, nxt, p50, alone, floor, kills, args, start), RESULTS, not args.quick)


if __name__ == "__main__":
    main()
