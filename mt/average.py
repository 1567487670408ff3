"""Average checkpoints: python -m mt.average CKPT [CKPT ...] -o averaged.ckpt"""

from __future__ import annotations

import argparse
import sys

from mt.checkpoint import CheckpointError, average_checkpoints


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mt.average", description=__doc__)
    parser.add_argument("checkpoints", nargs="+", help="checkpoints of one run (same model and tokenizer)")
    parser.add_argument("-o", "--output", required=True, help="where to write the averaged checkpoint")
    args = parser.parse_args(argv)
    try:
        out = average_checkpoints(args.checkpoints, args.output)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"averaged {len(args.checkpoints)} checkpoints into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
