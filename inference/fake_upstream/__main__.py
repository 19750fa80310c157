"""``python -m inference.fake_upstream --port 9100 --latency-ms 50 --fail-rate 0.1``"""

from __future__ import annotations

import argparse

from . import run_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI/Anthropic/Cohere upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    run_forever(
        host=args.host, port=args.port, latency_ms=args.latency_ms, fail_rate=args.fail_rate
    )


if __name__ == "__main__":
    main()
