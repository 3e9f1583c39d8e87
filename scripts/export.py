"""Consolidate a sharded DeepSpeed (ZeRO) checkpoint into one fp32 file that loads without DeepSpeed.

    python scripts/export.py outputs/<task>/<run>/checkpoints/best.ckpt [--output model.ckpt]
    python scripts/export.py outputs/<task>/<run>      # the run's best checkpoint
"""
import argparse
import sys

from factory.errors import FactoryError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt_path", help="a ZeRO checkpoint directory written by scripts/train.py, or its run")
    parser.add_argument("--output", help="the file to write (default: <name>-fp32.ckpt beside it)")
    args = parser.parse_args()
    from factory.rundir.checkpoints import consolidate, resolve_checkpoint

    try:
        print(consolidate(resolve_checkpoint(args.ckpt_path), args.output))
    except FactoryError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # --output not writable
        print(f"error: --output: {e.strerror}: {e.filename or args.output}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
