"""``python -m agii_sync.emulator --root DIR [--host 127.0.0.1] [--port 0] ...``"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .server import Emulator, Settings, is_loopback
from .tenant import QUIRKS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m agii_sync.emulator",
        description="A loopback SharePoint REST emulator for agii-sync (see docs/emulator.md).",
    )
    parser.add_argument(
        "--root", type=Path, required=True, help="folder holding one folder per site"
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay every API request")
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="share of API requests answered 429/503"
    )
    parser.add_argument(
        "--retry-after", type=float, default=1.0, help="seconds sent in Retry-After (default 1)"
    )
    parser.add_argument(
        "--lock",
        action="append",
        default=[],
        metavar="FILE_URL",
        help="server-relative URL of a file that is 'open in Excel' (423 on write); repeatable",
    )
    parser.add_argument(
        "--quirk",
        action="append",
        default=[],
        choices=sorted(QUIRKS),
        metavar="NAME",
        help="behave like a misconfigured or unusual tenant; repeatable: "
        + "; ".join(f"{name}: {text}" for name, text in sorted(QUIRKS.items())),
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for fault injection")
    parser.add_argument("-v", "--verbose", action="store_true", help="log requests to stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not is_loopback(args.host):
        print(f"error: --host {args.host} is not a loopback address", file=sys.stderr)
        return 2
    if not 0 <= args.fault_rate <= 1 or args.retry_after < 0 or args.latency_ms < 0:
        print(
            "error: --fault-rate must be 0..1; --retry-after and --latency-ms >= 0", file=sys.stderr
        )
        return 2
    if not 0 <= args.port <= 65535:
        print("error: --port must be 0..65535 (0: any free port)", file=sys.stderr)
        return 2
    args.root.mkdir(parents=True, exist_ok=True)
    settings = Settings(args.latency_ms, args.fault_rate, args.retry_after, args.verbose)
    emulator = Emulator(
        args.root, settings=settings, locks=args.lock, seed=args.seed, quirks=args.quirk
    )
    try:
        url = emulator.bind(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    print(url, flush=True)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
