"""Check and read the hash-chained audit logs (factory.governance.audit).

    python scripts/audit.py verify [LOG ...]     # default: the read log and the registry's log
    python scripts/audit.py show [LOG] [--dataset NAME] [--user WHO] [--action read] [--json]

The read log is $FACTORY_AUDIT_LOG, else $FACTORY_ROOT/governance/audit.jsonl (else
./governance/audit.jsonl); the registry's is <registry>/audit.jsonl ($FACTORY_REGISTRY, else
$FACTORY_ROOT/registry, else ./registry). verify prints each log's line count and head hash
(record it elsewhere to check the log against later). Exit codes: 0 intact, 1 a log is
damaged or tampered with (the first bad line is named), 2 bad input (show: no such log),
141 the reader stopped early (``| head``).
"""
import argparse
import json
import sys
from pathlib import Path

from factory.cli import ArgumentParser as Parser, job, quiet_pipe
from factory.errors import FactoryError
from factory.formatting import count
from factory.governance import access, audit
from factory.registry.store import AUDIT, default_dir


def parser() -> Parser:
    main = Parser(prog="audit.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser("verify", help="check the hash chain of each log; exit 1 naming the first bad line")
    verify.add_argument("logs", nargs="*", metavar="LOG", help="audit logs (default: the read log and the registry's)")
    show = commands.add_parser("show", help="print a log's entries, oldest first")
    show.add_argument("log", nargs="?", help="an audit log (default: the read log)")
    show.add_argument("--dataset", help="only entries about this dataset (or registered model)")
    show.add_argument("--user", help="only entries by this identity")
    show.add_argument("--action", help="only this action (read, deny, register, promote, ...)")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    return main


@job
def run(args: argparse.Namespace) -> int:
    if args.command == "verify":
        damaged = False
        for path in args.logs or [access.audit_path(), default_dir() / AUDIT]:
            if not args.logs and not path.exists() and not audit.head_path(path).exists():  # a deleted log is BAD
                print(f"--   {path}: no log yet")
                continue
            found = audit.check(path)
            damaged |= found.problem is not None
            torn = f", {found.torn} of them torn, not JSON (an older writer's)" if found.torn else ""
            legacy = f" ({count(found.legacy, 'unchained legacy line')} first{torn})" if found.legacy else ""
            anchor = f", anchored by {audit.head_path(path).name}" if found.anchored else ", no anchor"
            print(f"BAD  {found.problem}" if found.problem else
                  f"OK   {path}: {count(found.lines, 'line')}{legacy}, head {found.head or '-'}{anchor}")
        return 1 if damaged else 0
    log = Path(args.log) if args.log else access.audit_path()
    if not log.is_file():
        raise FactoryError(f"audit log {log}: no such file (see {parser().prog} verify)")
    for entry in audit.read(log):
        if ((args.dataset and args.dataset not in (entry.get("dataset"), entry.get("name")))
                or (args.user and entry.get("who") != args.user) or (args.action and entry.get("action") != args.action)):
            continue
        first = [str(entry.get(k, "-")) for k in ("when", "who", "action")]
        rest = [f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in entry.items()
                if k not in ("when", "who", "action") and v is not None]
        print(json.dumps(entry) if args.json else "  ".join(first + rest))
    return 0


if __name__ == "__main__":
    sys.exit(quiet_pipe(lambda: run(parser().parse_args())))
