"""What a model, run or snapshot came from, and what was made from it, from the OpenLineage events.

    python scripts/lineage.py fraud@production        # a registered model: NAME@stage, NAME@vN, NAME@N, NAME
    python scripts/lineage.py 2026-12-07_18-09-21_b9c286   # a training run (its id, or run:<id>)
    python scripts/lineage.py 3f2a9c01d4e5b6a7        # a snapshot (its id or a unique prefix)
    python scripts/lineage.py fraud@production --json

Reads the events under $FACTORY_ROOT/lineage (``--events`` another folder or a JSON-lines file);
see docs/data.md, "Lineage". Exit codes: 0 shown, 2 nothing recorded for that name (one line),
141 the reader stopped early (``| head``).
"""
import argparse
import sys

from factory.cli import ArgumentParser as Parser, job, quiet_pipe


def parser() -> Parser:
    main = Parser(prog="lineage.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    main.add_argument("name", help="NAME@stage, NAME@vN, a run id or a snapshot id")
    main.add_argument("--json", action="store_true", help="the tree as JSON instead")
    main.add_argument("--events", metavar="PATH", help="the events' folder (default: $FACTORY_ROOT/lineage)")
    main.add_argument("--registry", metavar="DIR", help="resolves NAME@stage (default: as scripts/registry.py)")
    return main


@job
def run(args: argparse.Namespace) -> None:
    from factory import files
    from factory.errors import FactoryError
    from factory.governance import lineage_graph as graphs

    graph = graphs.build(graphs.read_events(args.events))
    key = graphs.resolve(graph, args.name)
    if key is None and "@" in args.name:  # a stage or "latest": the registry says which version
        from factory import registry

        version = registry.get(args.name, args.registry)
        key = graphs.resolve(graph, f"{version.name}@v{version.version}")
    if key is None:
        where = args.events or graphs.events_dir()
        raise FactoryError(f"lineage: no event names {args.name!r} ({graph.events} events in {where}); give "
                           "NAME@stage, NAME@vN, a run id or a snapshot id that a job recorded")
    tree = graphs.trace(graph, key)
    if args.json:
        print(files.json_text(tree, indent=2))
    else:
        graphs.print_tree(tree)


if __name__ == "__main__":
    sys.exit(quiet_pipe(lambda: run(parser().parse_args())))  # `| head` ends it quietly
