"""Run every report in conf/report/ that has a `schedule` (cron), in the foreground.

    python scripts/schedule.py               # until Ctrl-C; each report in its own process
    python scripts/schedule.py --once        # run what is due now and exit (cron, systemd timers, CI)
    python scripts/schedule.py --crontab     # crontab lines: each runs --once --report <name>
    python scripts/schedule.py --report run_report --once
Reports are read from conf/report/ and from report/ of $FACTORY_CONFIG_DIR; a run is recorded
in reports/index.json with trigger `schedule`.
Exit codes: 0 all ran (or nothing was due), 1 a report failed, 2 bad input: a report whose
declaration is invalid (bad cron line, required parameter unset) is named with its file on
one line and skipped, the others still run or are listed, and the exit status is 2.
A crontab line whose report has no schedule now, or another one than the line was printed
for (--expected-schedule), is stale: one line says to regenerate the crontab, exit 2.
"""
import argparse
import logging
import sys

from factory.errors import EXIT_BAD_INPUT, FactoryError, exit_bad_input


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="run the reports due now, then exit")
    mode.add_argument("--crontab", action="store_true", help="print crontab lines instead of running")
    parser.add_argument("--report", action="append", default=None, metavar="NAME",
                        help="only this report (repeatable); default: every report with a schedule")
    parser.add_argument("--expected-schedule", metavar="CRON",
                        help="with --once and one --report (crontab lines): the schedule the line was printed "
                             "for; another one in the report's file means the crontab is stale (exit 2)")
    args = parser.parse_args(argv)
    if args.expected_schedule and not (args.once and len(args.report or ()) == 1):
        parser.error("--expected-schedule needs --once and one --report")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    import os
    from pathlib import Path

    from factory.reports import schedule

    try:
        reports, bad = schedule.scheduled_reports(args.report)
    except FactoryError as e:  # e.g. $FACTORY_CONFIG_DIR names no directory
        exit_bad_input(str(e), e)
    # A crontab line for a report whose schedule is gone or changed would quietly find nothing due.
    stale = schedule.stale_crontab(reports, bad, args.expected_schedule) if args.once else {}
    for report in bad:  # each named with its file and skipped; the others still run
        print(f"error: {stale.get(report.name) or report}", file=sys.stderr)
    for report in reports:
        if report.name in stale:
            print(f"error: {stale[report.name]}", file=sys.stderr)
            bad.append(report)
    reports = [r for r in reports if r.name not in stale]
    status = EXIT_BAD_INPUT if bad else 0
    reports_dir = Path(os.environ.get("FACTORY_ROOT", ".")) / "reports"
    if not reports:
        if not bad:  # stderr: stdout of --crontab is meant for crontab
            user_dir = os.environ.get("FACTORY_CONFIG_DIR")
            where = f"conf/report/ or {Path(user_dir) / 'report'}/" if user_dir else "conf/report/"
            print(f"no report in {where} has a schedule", file=sys.stderr)
        return _summary(bad, status)
    if args.crontab:
        print("\n".join(schedule.crontab_lines(reports, Path.cwd(), reports_dir)))
        return _summary(bad, status)
    runner = schedule.subprocess_runner()
    if args.once:
        results = schedule.run_due(reports, reports_dir, runner)
        if not results:  # a crontab line's log still shows the tick
            logging.info("schedule: nothing due now (%s)", ", ".join(r.name for r in reports))
        failed = any(ok is False for ok in results.values())
        return _summary(bad, status or (1 if failed else 0))
    for r in reports:
        logging.info("schedule: %s at '%s'", r.name, r.schedule)
    try:
        schedule.serve(reports, reports_dir, runner)
    except KeyboardInterrupt:
        pass
    return _summary(bad, status)


def _summary(bad: list, status: int) -> int:
    if len(bad) > 1:  # one skipped report: its own line says it all
        print(f"error: {len(bad)} report(s) skipped: {', '.join(r.name for r in bad)} (exit {status})",
              file=sys.stderr)
    return status

if __name__ == "__main__":
    sys.exit(main())
