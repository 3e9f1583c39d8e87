"""Upload offline wandb runs (written by logger=wandb, the default) with `wandb sync`.

    python scripts/sync.py                                  # every offline run under outputs/
    python scripts/sync.py outputs/fraud_detection --dry-run  # list them and the command, upload nothing
    python scripts/sync.py outputs/train/<run> --project my-team --entity my-org
Exit codes: 0 uploaded (or listed), 1 wandb sync failed, 2 bad input (no runs, no API key).
"""
import argparse
import os
import sys
from pathlib import Path

from factory.errors import EXIT_BAD_INPUT
from factory.errors import FactoryError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(os.environ.get("FACTORY_ROOT", ".")) / "outputs"
    parser.add_argument("paths", nargs="*", default=[default],
                        help=f"outputs, task or run directories to search (default: {default})")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and the command; upload nothing")
    parser.add_argument("--project", help="upload into this wandb project instead of the one each run names")
    parser.add_argument("--entity", help="upload under this wandb entity (team or user)")
    args = parser.parse_args(argv)

    from factory.tracking import sync

    try:
        runs = sync.offline_runs(args.paths)
        if args.dry_run:
            for run in runs:
                print(run)
            upload = " ".join(["wandb", *sync.sync_command(runs, args.project, args.entity)[3:]])
            print(f"{len(runs)} offline run(s)" + (f"; to upload: {upload}" if runs else ""), file=sys.stderr)
            return 0
        if not runs:
            searched = ", ".join(map(str, args.paths))
            raise FactoryError(f"no offline wandb runs under {searched} (runs write them with logger=wandb)")
        return 0 if sync.sync(runs, args.project, args.entity) == 0 else 1
    except FactoryError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
