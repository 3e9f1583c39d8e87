"""Export a checkpoint: consolidate a ZeRO checkpoint (ckpt), or build one ONNX graph that takes raw rows (onnx).

    python scripts/export.py outputs/<task>/<run>/checkpoints/best.ckpt [--output model.ckpt]
    python scripts/export.py outputs/<task>/<run>      # the run's best checkpoint
    python scripts/export.py outputs/<task>/<run> --format onnx [--quantize int8] [--output model.onnx]
    python scripts/export.py fraud_detection@production --format onnx --quantize int8   # into the registry

--format onnx writes the graph (preprocessing inside; docs/serving.md) beside the checkpoint
(best.ckpt -> best.onnx, best.int8.onnx), or into a registered version's folder, and prints
how it compares with PyTorch on the run's test split: file sizes, max |probability
difference| (fp32 must be <= 1e-5, else nothing is written), the headline test metric and
p50 / p99 latency at batch 1 and 256. Exit codes: 0 done, 2 bad input (one line).
"""
import argparse
import sys

from factory.cli import ArgumentParser as Parser, job
from factory.errors import EXIT_BAD_INPUT, FactoryError


def parser() -> Parser:
    p = Parser(prog="export.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a run directory, a checkpoint, or (onnx) a registered model NAME@STAGE / NAME@3")
    p.add_argument("--format", choices=("ckpt", "onnx"), default="ckpt", help="ckpt: consolidate ZeRO shards (default)")
    p.add_argument("--quantize", choices=("int8",), help="onnx: also write a dynamically quantized int8 copy")
    p.add_argument("--output", help="the file to write (default: beside the checkpoint)")
    p.add_argument("--registry", metavar="DIR", help="the registry directory (default $FACTORY_REGISTRY)")
    p.add_argument("--reps", type=int, default=300, help="onnx: timed calls at batch 1 (batch 256: a sixth)")
    p.add_argument("--markdown", action="store_true", help="onnx: also print the comparison as a docs/serving.md row")
    return p


@job
def run(args: argparse.Namespace) -> None:
    if args.format == "ckpt":
        onnx_only = [flag for flag, given in (("--quantize", args.quantize), ("--markdown", args.markdown)) if given]
        if onnx_only:
            raise FactoryError(f"{onnx_only[0]} is for --format onnx")
        from factory.rundir.checkpoints import consolidate, resolve_checkpoint

        try:
            print(consolidate(resolve_checkpoint(args.source), args.output))
        except OSError as e:  # --output not writable
            print(f"error: --output: {e.strerror}: {e.filename or args.output}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        return
    if args.reps < 1:
        raise FactoryError(f"--reps {args.reps}: expected at least 1 timed call")
    from factory.registry import Registry
    from factory.registry.exports import export_source

    what, files, comparison = export_source(args.source, Registry(args.registry), args.output, args.quantize == "int8",
                                            reps=args.reps, reps_large=max(args.reps // 6, 10))
    print(f"exported {what} -> " + ", ".join(str(p) for p in files.values()))
    for line in comparison.lines() if comparison else ["no run config beside the checkpoint: not compared"]:
        print(line)
    if args.markdown and comparison:
        print(comparison.markdown_row(what))


if __name__ == "__main__":
    run(parser().parse_args())
