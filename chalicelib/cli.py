"""`python -m chalicelib VERB`: the command line (contract section 5).

Exit codes: 0 success, 1 the work failed (message on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .settings import ConfigError
from .storage import StorageError


class UsageError(Exception):
    """Bad arguments the parser could not catch; exit code 2."""


def cmd_serve(args: argparse.Namespace) -> int:
    from .localstack import serve

    return serve(args.host, args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chalicelib", description="chatlake command line")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("serve", help="run the local stack (what `make run` does)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as e:
        parser.error(str(e))  # exits 2
    except (ConfigError, StorageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
