"""Curated-data snapshots: list them, show one, diff two.

    python scripts/data.py list [--json]
    python scripts/data.py show <id> [--json]          # an id or a unique prefix (4+ characters)
    python scripts/data.py diff <a> <b> [--json]       # rows added/removed, schema, column shifts

Every command takes --store DIR (default $FACTORY_ROOT/data, else ./data; snapshots live under
DIR/snapshots/). diff reads the data: a non-public snapshot is checked against the access policy
and the read audited; an encrypted one needs FACTORY_DATA_KEY. Exit codes: 0 done, 2 bad input
(one line naming the id or file).
"""
import argparse

from factory.cli import ArgumentParser as Parser, job


def parser() -> Parser:
    main = Parser(prog="data.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    main.add_argument("--store", metavar="DIR", help="the data directory (default $FACTORY_ROOT/data, else ./data)")
    common = Parser(add_help=False)  # --store and --json after the subcommand too
    common.add_argument("--store", metavar="DIR", default=argparse.SUPPRESS, help="the data directory")
    common.add_argument("--json", action="store_true", help="JSON instead of tables")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", parents=[common], help="every snapshot, oldest first")
    show = commands.add_parser("show", parents=[common], help="one snapshot's schema, source and columns")
    show.add_argument("id", help="a snapshot id or a unique prefix of it")
    diff = commands.add_parser("diff", parents=[common], help="what changed from snapshot A to B")
    diff.add_argument("a", help="the earlier snapshot (id or prefix)")
    diff.add_argument("b", help="the later snapshot (id or prefix)")
    return main


@job
def run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from factory.data import snapshot_display as display
    from factory.data import snapshots
    from factory.data.snapshot_diff import compare

    store = Path(args.store) if args.store else snapshots.default_store()
    if args.command == "list":
        display.print_list(snapshots.list_snapshots(store), store, args.json)
    elif args.command == "show":
        display.print_record(snapshots.load_record(args.id, store), args.json)
    elif args.command == "diff":
        a, b = (snapshots.load_record(ref, store)["id"] for ref in (args.a, args.b))  # both ids checked first
        display.print_diff(compare(snapshots.read_governed(a, store), snapshots.read_governed(b, store)), args.json)


if __name__ == "__main__":
    run(parser().parse_args())
