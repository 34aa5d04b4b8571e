"""Serve a trained run over HTTP: score candidates (CTR runs) or recommend items (next-item runs)
and keep each user's events, and streaming states where the model streams, across restarts.

    python experiments/serve.py --run results/mdaf-seed0                  # 127.0.0.1:8000
    python experiments/serve.py --run results/mamba4rec-seed0 --port 8001 --config serve.yaml
    curl -s localhost:8000/run

The routes are in serving/app.py, the settings (window, batching, snapshots, bounds) in
serving/config.py; --config names a YAML of those keys, the flags below override it.
"""
import argparse
import logging
import sys

from common.config import load_config
from common.errors import exit_status
from training.logs import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a training run directory (results/<run>)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--config", help="a YAML of serve settings (serving/config.py)")
    parser.add_argument("--state-dir", help="where the event log and snapshots live (default <run>/serving)")
    parser.add_argument("--no-streaming", action="store_true", help="recompute from the window on every request")
    args = parser.parse_args(argv)
    setup_logging(None, True)

    def serve() -> None:
        import uvicorn

        from serving.app import create_app
        from serving.config import ServeConfig
        from serving.service import Service

        overrides = {k: v for k, v in (("state_dir", args.state_dir),) if v is not None}
        if args.no_streaming:
            overrides["streaming"] = False
        cfg = load_config(ServeConfig, args.config, overrides)
        app = create_app(Service(args.run, cfg))
        logging.getLogger(__name__).info("serving %s on http://%s:%d", args.run, args.host, args.port)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")

    return exit_status(serve)


if __name__ == "__main__":
    sys.exit(main())
