#!/usr/bin/python3
"""erovm's benchmark driver; bench/run is its front end (see bench/run).

  main.py phases SUITE                  the phases SUITE has: native, guest
  main.py unavailable SUITE             why SUITE cannot run (exit 77), or exit 0
  main.py measure SUITE PHASE RAW [--pairs N] [--quick]
                                        measure one phase, write raw JSON
                                        (after each pair, with "pairs_done")
  main.py pairs-done RAW                the pairs RAW holds (0: none)
  main.py report SUITE DIR RAW... [--quick] [--skipped REASON]
                                        DIR/SUITE.json, DIR/SUITE.png,
                                        DIR/SUITE-values.png; print the table
  main.py readme DIR [--update README]  the README's results table, from DIR
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import block  # noqa: E402
import boot  # noqa: E402
import results  # noqa: E402
import startup  # noqa: E402
import vsock  # noqa: E402

SUITES = {"startup": startup, "boot": boot, "block": block, "vsock": vsock}
PHASES = ("native", "guest")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def suite_module(name):
    if name not in SUITES:
        raise SystemExit("bench: unknown suite %r (%s)" % (name, ", ".join(SUITES)))
    return SUITES[name]


def where(phase):
    if phase == "native":
        return "native"
    return "testhost" if os.environ.get("EROVM_IN_TESTHOST") == "1" else "direct"


def cmd_phases(args):
    module = suite_module(args.suite)
    print(" ".join(p for p in PHASES if hasattr(module, p)))


def cmd_unavailable(args):
    module = suite_module(args.suite)
    reason = module.unavailable() if hasattr(module, "unavailable") else None
    if reason:
        print(reason)
        return 77
    return 0


def cmd_measure(args):
    module = suite_module(args.suite)
    measure = getattr(module, args.phase, None)
    if measure is None:
        raise SystemExit("bench: suite %s has no %s phase" % (args.suite, args.phase))
    machine = results.machine()

    def checkpoint(raw, pairs_done):
        """Writes what was measured so far: a run cut short keeps it."""
        raw = dict(raw, phase=args.phase, where=where(args.phase), machine=machine,
                   loadavg_after=os.getloadavg()[0], pairs_done=pairs_done)
        with open(args.raw + ".tmp", "w") as out:
            json.dump(raw, out)
        os.replace(args.raw + ".tmp", args.raw)
    checkpoint(measure(args.pairs, args.quick, checkpoint), args.pairs)
    return 0


def cmd_pairs_done(args):
    """How many pairs a (maybe partial) raw file holds; 0 if there is none."""
    try:
        with open(args.raw) as f:
            print(json.load(f).get("pairs_done", 0))
    except (OSError, ValueError):
        print(0)
    return 0


def cmd_report(args):
    phases = []
    for path in args.raw:
        with open(path) as f:
            phases.append(json.load(f))
    doc = results.build(args.suite, phases, REPO, args.quick)
    if args.skipped:
        doc["skipped"] = args.skipped
    base = os.path.join(args.dir, args.suite)
    os.makedirs(args.dir, exist_ok=True)
    results.write(doc, base + ".json")
    print("bench: %s: %s" % (args.suite, base + ".json"))
    if args.skipped:
        print("bench: %s: skipped: %s" % (args.suite, args.skipped))
        return 0
    import plot  # only now: matplotlib is slow to import
    for draw, suffix in ((plot.ratios, ".png"), (plot.values, "-values.png")):
        if draw(doc, base + suffix):
            print("bench: %s: %s" % (args.suite, base + suffix))
    for line in results.table(doc):
        print("  " + line)
    for note in doc["notes"]:
        print("  note: " + note)
    pairs = {c["ratio_summary"]["n"] for c in doc["comparisons"] if c["ratio_summary"]}
    if pairs and min(pairs) < 10:
        print("  note: %s pairs per comparison, fewer than the 10 of a full run%s"
              % (min(pairs), " (--quick)" if args.quick else ""))
    return 0


def cmd_readme(args):
    import readme
    text = readme.table(args.dir, REPO)
    if args.update:
        readme.update(args.update, text)
    else:
        print(text, end="")
    return 0


def main():
    parser = argparse.ArgumentParser(prog="bench/lib/main.py")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("phases")
    p.add_argument("suite")
    p.set_defaults(func=cmd_phases)
    p = sub.add_parser("unavailable")
    p.add_argument("suite")
    p.set_defaults(func=cmd_unavailable)
    p = sub.add_parser("measure")
    p.add_argument("suite")
    p.add_argument("phase", choices=PHASES)
    p.add_argument("raw")
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--quick", action="store_true")
    p.set_defaults(func=cmd_measure)
    p = sub.add_parser("pairs-done")
    p.add_argument("raw")
    p.set_defaults(func=cmd_pairs_done)
    p = sub.add_parser("report")
    p.add_argument("suite")
    p.add_argument("dir")
    p.add_argument("raw", nargs="*")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--skipped")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("readme")
    p.add_argument("dir")
    p.add_argument("--update")
    p.set_defaults(func=cmd_readme)
    args = parser.parse_args()
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
