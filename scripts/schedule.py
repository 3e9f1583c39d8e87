"""Run every report in conf/report/ that has a `schedule` (cron), in the foreground.

    python scripts/schedule.py               # until Ctrl-C; each report in its own process
    python scripts/schedule.py --once        # run what is due now and exit (cron, systemd timers, CI)
    python scripts/schedule.py --crontab     # print the equivalent crontab lines
    python scripts/schedule.py --report run_report --once
Exit codes: 0 all ran (or nothing was due), 1 a report failed, 2 bad input.
"""
import argparse
import logging
import sys

from factory.cli import EXIT_BAD_INPUT
from factory.errors import FactoryError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="run the reports due now, then exit")
    mode.add_argument("--crontab", action="store_true", help="print crontab lines instead of running")
    parser.add_argument("--report", action="append", default=None, metavar="NAME",
                        help="only this report (repeatable); default: every report with a schedule")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    import os
    from pathlib import Path

    from factory import schedule

    try:
        reports = schedule.scheduled_reports(args.report)
    except FactoryError as e:
        for line in str(e).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    reports_dir = Path(os.environ.get("FACTORY_ROOT", ".")) / "reports"
    if args.crontab:
        print("\n".join(schedule.crontab_lines(reports, Path.cwd())))
        return 0
    if not reports:
        print("no report in conf/report/ has a schedule", file=sys.stderr)
        return 0
    runner = schedule.subprocess_runner()
    if args.once:
        results = schedule.run_due(reports, reports_dir, runner)
        return 1 if any(ok is False for ok in results.values()) else 0
    for r in reports:
        logging.info("schedule: %s at '%s'", r.name, r.schedule)
    try:
        schedule.serve(reports, reports_dir, runner)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
