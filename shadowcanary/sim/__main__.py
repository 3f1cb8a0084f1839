"""``python -m shadowcanary.sim``: start the model simulator (a stand-in, not a model)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shadowcanary.errors import ConfigError
from shadowcanary.sim.server import DEFAULT_HOST, DEFAULT_PORT, serve
from shadowcanary.sim.state import DEFAULT_MAX_BODY_BYTES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shadowcanary.sim",
        description="OpenAI-compatible model SIMULATOR for tests, demos and benchmarks. "
        "Answers are generated text, not model output.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument(
        "--profiles", type=Path, default=None, help="YAML file (default: shipped profiles)"
    )
    parser.add_argument("--admin-token", default=None, help="enables /admin with this bearer token")
    parser.add_argument("--seed", type=int, default=0, help="seed of latency and error draws")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument(
        "--port-file", type=Path, default=None, help="write the bound port here once listening"
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the process that started the simulator exits",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        serve(
            args.host,
            args.port,
            args.profiles,
            args.admin_token,
            args.seed,
            max_body_bytes=args.max_body_bytes,
            port_file=args.port_file,
            log_level=args.log_level,
            exit_with_parent=args.exit_with_parent,
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
