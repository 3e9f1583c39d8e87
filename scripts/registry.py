"""The model registry: register a run's best checkpoint, list, show, promote, load.

    python scripts/registry.py register outputs/fraud_detection/<run> [--name fraud] [--export]  # or a run id
    python scripts/registry.py list [--json]
    python scripts/registry.py show fraud[@3|@production|@staging] [--json]
    python scripts/registry.py promote fraud 3 --stage production
    python scripts/registry.py load fraud@production [--backend onnx] [--score new.csv --output scored.csv]

Every command takes --registry DIR (default $FACTORY_REGISTRY, else $FACTORY_ROOT/registry,
else ./registry). Exit codes: 0 done, 2 bad input (one line naming the run, model,
version or stage).
"""
import argparse
import sys

from factory.cli import ArgumentParser as Parser, job
from factory.registry.exports import BACKENDS
from factory.registry.store import STAGES


def parser() -> Parser:
    main = Parser(prog="registry.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    main.add_argument("--registry", metavar="DIR", help="the registry directory")
    common = Parser(add_help=False)  # --registry after the subcommand too
    common.add_argument("--registry", metavar="DIR", default=argparse.SUPPRESS, help="the registry directory")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register = commands.add_parser("register", parents=[common], help="register a completed run's best checkpoint")
    register.add_argument("run", help="a run directory, or a run id under $FACTORY_ROOT/outputs")
    register.add_argument("--name", help="model name (default: the run's experiment)")
    register.add_argument("--export", action="store_true",
                          help="also export it to ONNX (best effort: an unexportable model registers all the same)")
    listing = commands.add_parser("list", parents=[common], help="every name and version")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    show = commands.add_parser("show", parents=[common], help="everything recorded about one version")
    show.add_argument("ref", help="NAME (latest), NAME@VERSION or NAME@STAGE")
    show.add_argument("--json", action="store_true", help="JSON instead of tables")
    promote = commands.add_parser("promote", parents=[common], help="move a version to a stage")
    promote.add_argument("name")
    promote.add_argument("version", type=int)
    promote.add_argument("--stage", required=True, choices=STAGES)
    load = commands.add_parser("load", parents=[common], help="load a version for inference and summarize it")
    load.add_argument("ref", help="NAME (latest), NAME@VERSION or NAME@STAGE")
    load.add_argument("--backend", default="torch", choices=BACKENDS,
                      help="torch: the checkpoint; onnx / onnx-int8: the exported graph in ONNX Runtime")
    load.add_argument("--score", metavar="TABLE", help="also score this CSV or Parquet file of raw rows")
    load.add_argument("--output", metavar="FILE", help="where --score writes (.csv or .parquet); default: print")
    return main


@job
def run(args: argparse.Namespace) -> None:
    from factory import registry
    from factory.registry import display

    store = registry.Registry(args.registry)
    if args.command == "register":
        v = registry.register(args.run, args.name, store.root, export=args.export)
        metric = f", {v.metric['name']} {v.metric['val']:.4f}" if v.metric.get("val") is not None else ""
        print(f"registered {v.name} v{v.version} (run {v.run_id}{metric}) in {store.root}")
        if args.export and v.metadata().get("kind") == "language_model":
            print("exports: " + display.language_fields(v.metadata())["exports"])
        elif args.export:
            print("exports: " + display.exports_line(registry.exported(v.ref, store.root), v.ref))
    elif args.command == "list":
        display.print_versions(store.versions(), store.root, args.json)
    elif args.command == "show":
        version = store.get(args.ref)
        display.print_version({**version.metadata(), "exports": registry.exported(version.ref, store.root)}, args.json)
    elif args.command == "promote":
        changes = store.promote(args.name, args.version, args.stage)
        if not changes:
            print(f"{args.name} v{args.version} is already {args.stage}")
        for version, before, after in changes:
            print(f"{args.name} v{version}: {before} -> {after}")
    elif args.command == "load":
        from factory.registry.loading import check_output, read_table, write_scored

        check_output(args.output)  # bad input is refused before the model loads
        table = read_table(args.score) if args.score else None
        if table is not None and store.get(args.ref).metadata().get("kind") == "language_model":
            from factory.errors import FactoryError

            raise FactoryError(f"--score: {args.ref} is a language model: it scores no rows; generate text with "
                               f"python scripts/generate.py model={args.ref}")
        loaded = registry.load(args.ref, store.root, backend=args.backend)
        # Scored rows on stdout (to pipe) put the summary on stderr.
        display.print_loaded(loaded, sys.stderr if table is not None and not args.output else sys.stdout)
        if table is not None:
            print(write_scored(loaded.predict(table), args.output))

if __name__ == "__main__":
    run(parser().parse_args())
