"""``pitfalls reduce MODEL --finding TARGET:PATH --out DIR``: a minimal standalone reproducer of one
finding (:mod:`harness.reduce`; docs/reduce.md)."""

from __future__ import annotations

import argparse
import sys

NAME = "reduce"
HELP = ("cut the model to the smallest slice of layers that still shows a finding and write a standalone "
        "reproducer (model, inputs, script, versions, README; TF Serving: the whole model as served); exit 0 "
        "reduced, 1 not shown, 3 whole model only, 4 the reduction could not run")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.check.model import PROBES

    p.add_argument("model", metavar="MODEL", help="a .keras or .h5 model file, or a SavedModel directory (no layers to cut: its whole-model reproducer)")
    p.add_argument("--finding", metavar="TARGET:PATH", required=True,
                   help="the finding to reproduce: a target and the path that showed it, as check labels it "
                        "(a bare target: its common path) "
                        "(litert:float32, litert:select_tf_ops, litert:float16, litert:dynamic, litert:int8, tfjs:cpu, "
                        "tfjs:wasm, tfjs:webgl, tfjs:webgl-f16 and every other backend of tf.js's backend table, coreml:as-given, coreml:concrete-function, "
                        "tfserving:rest, tfserving:float-json)")
    p.add_argument("--out", metavar="DIR", required=True,
                   help="the reproducer's directory (created; refused when not empty unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out directory")
    p.add_argument("--inputs", metavar="FILE.npz", help="sample inputs keyed by input name (as check takes them; "
                   "default: synthesised from the signature)")
    p.add_argument("--probe", choices=("sample", *PROBES),
                   help="the inputs to feed: check's sample (--inputs or synthesised; the default) or one of "
                        "check's synthetic probes, synthesised as check makes them, int8 calibrated on the sample "
                        "as check does (a finding labelled `litert int8 [wide]` names its probe itself)")
    p.add_argument("--calibration", metavar="FILE.npz",
                   help="a calibration set keyed by input name, as check --calibration takes it: int8 is calibrated "
                        "on it (its values at the reduced model's inputs are written to calibration/); a finding "
                        "check labelled `litert int8 [--calibration FILE.npz]` is fed the set itself")
    p.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                   help="import MODULE first (it registers the model's custom layers); repeatable; trusted code")
    p.add_argument("--trust-model", action="store_true",
                   help="let the model run the code it carries (see docs/security.md)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from harness.commands.check import runtime_log_kept
    from harness.errors import HarnessError
    from harness.reduce.run import COULD_NOT_RUN, reduce_model

    with runtime_log_kept() as (terminal, log):
        try:
            result = reduce_model(args.model, args.finding, args.out, inputs=args.inputs, probe=args.probe,
                                  calibration_file=args.calibration,
                                  imports=tuple(args.imports or ()), trust=args.trust_model, overwrite=args.overwrite,
                                  progress=None if args.quiet else (lambda m: print(f"reduce: {m}", file=terminal,
                                                                                    flush=True)))
        except HarnessError as exc:  # the reduction itself failed: its evidence and hint, nothing written
            print(f"pitfalls: reduce could not run: {exc}", file=terminal)
            tail = log.text()[-3000:]
            if tail.strip():
                print(f"--- runtime log (last lines) ---\n{tail}", file=terminal)
            return COULD_NOT_RUN
    print(result.message, file=sys.stdout)
    return result.exit_code()
