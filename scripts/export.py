"""Consolidate a sharded DeepSpeed (ZeRO) checkpoint into one fp32 file that loads without DeepSpeed.

    python scripts/export.py outputs/<task>/<run>/checkpoints/best.ckpt [--output model.ckpt]
"""
import argparse
import sys

from factory.errors import FactoryError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt_path", help="a ZeRO checkpoint directory written by scripts/train.py")
    parser.add_argument("--output", help="the file to write (default: <name>-fp32.ckpt beside it)")
    args = parser.parse_args()
    from factory.checkpoints import consolidate

    try:
        print(consolidate(args.ckpt_path, args.output))
    except FactoryError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
