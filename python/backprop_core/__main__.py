"""``python -m backprop_core``: the command line.

::

    python -m backprop_core                  the walkthrough: notebooks 7.1 and 7.2, checked
    python -m backprop_core --json           the same walkthrough as JSON
    python -m backprop_core plot --out DIR   pictures of both notebook examples, PNG and SVG
    python -m backprop_core fit --out DIR    fit y = sin(3x) natively; a picture of it, PNG and SVG

Exit codes: 0 success; 1 the walkthrough found a disagreement (or the pictures could not be
written); 2 bad usage, or a part that is not installed (matplotlib for ``plot`` and ``fit``).

The benchmark is not part of the installed package (numpy and scipy ship none either): it is
``benchmarks/bench.py`` in the repository. ``bench``, the command that ran it from the package
in earlier versions, stays only to say so: it prints where the benchmark lives and exits 2,
whatever follows it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PACKAGE = "backprop_core"
EXIT_UNAVAILABLE = 2  # as argparse's usage errors: the command as given cannot run here
BENCH_MOVED = (
    f"{PACKAGE} bench: the benchmark is not part of the installed package; it lives in the "
    "repository's benchmarks/ folder: from a checkout, run python benchmarks/bench.py --help "
    "(see benchmarks/README.md)"
)

DESCRIPTION = """\
Backpropagation of notebooks 7.1 (the toy chain) and 7.2 (the ReLU MLP), computed by the native
core and checked against a plain-numpy reference and finite differences.

Without a command: the walkthrough, a table of every forward value and derivative of both
notebooks (the notebook's printed value, native, reference, finite difference, verdict), ending
with ALL AGREE or the number that disagree. Exit code 0 when all agree, 1 otherwise."""

EPILOG = """\
examples:
  python -m backprop_core
  python -m backprop_core --json | python -c "import json,sys; print(json.load(sys.stdin)['ok'])"
  python -m backprop_core plot --out pictures

the benchmark lives in the repository, not in the package: python benchmarks/bench.py"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m {PACKAGE}",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the walkthrough as JSON instead of a table: {ok, failures, tolerances, rows}, "
        "each row with section, name, printed (the notebook's value or null), native, reference, "
        "finite_difference (or null), verdict and ok; same exit code",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    plot = commands.add_parser(
        "plot",
        help="draw both notebook examples as PNG and SVG (needs backprop_core[plot])",
        description="Write pictures of the notebook examples into DIR (created if missing), as "
        "PNG and SVG, and print their paths: toy_graph (notebook 7.1's chain as a computational "
        "graph, every node with its forward value and dl/d(node), every edge with its local "
        "derivative) and mlp_gradients (notebook 7.2's network: heatmaps of dl/dW_k and dl/db_k "
        "on one colour scale, and the gradient norm per layer). Needs matplotlib: "
        'pip install "backprop_core[plot]"; without it, exit code 2.',
    )
    plot.add_argument("--out", required=True, metavar="DIR", type=Path,
                      help="directory to write the pictures into")  # fmt: skip
    fit = commands.add_parser(
        "fit", help="fit y = sin(3x) with the native training loop and draw it (needs "
        "backprop_core[plot])", description="Fit y = sin(3x) (200 noisy samples, MLP 1-32-32-1, "
        "Adam) with backprop_core.fit and write DIR/fit.png and DIR/fit.svg: the data, the fit "
        "and the loss per epoch. Without matplotlib, exit code 2.")
    fit.add_argument("--out", required=True, metavar="DIR", type=Path,
                     help="directory to write the pictures into")  # fmt: skip
    # Kept so that the command of earlier versions says where the benchmark went, rather than
    # "invalid choice". No options of its own (add_help=False): "bench --help" and whatever else
    # follows it get the same answer.
    commands.add_parser(
        "bench",
        add_help=False,
        help="moved out of the package: prints where the benchmark lives (the repository's "
        "benchmarks/bench.py) and exits 2",
    )
    return parser


def _exit_code(e: SystemExit) -> int:
    """What the process would have exited with, as sys.exit maps its argument."""
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    print(e.code, file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        # parse_known_args, so that the old benchmark's options still get the answer "moved".
        args, unknown = parser.parse_known_args(argv)
        if args.json and args.command:
            parser.error(f"--json applies to the walkthrough, not to {args.command}")
        if unknown and args.command != "bench":
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as e:  # --help, or a usage error argparse has already reported
        return _exit_code(e)

    if args.command == "plot":
        return run_plot(args.out)
    if args.command == "fit":
        from . import _fit_demo

        return _fit_demo.run(args.out)
    if args.command == "bench":
        print(BENCH_MOVED, file=sys.stderr)
        return EXIT_UNAVAILABLE
    from . import _walkthrough

    return _walkthrough.run(as_json=args.json)


def run_plot(out: Path) -> int:
    """Write toy_graph and mlp_gradients for the notebook examples, PNG and SVG, into ``out``."""
    from . import plot
    from .examples import mlp_example, toy_example

    try:
        toy = toy_example()
        mlp = mlp_example()
        figures = {
            "toy_graph": plot.toy_graph(toy.x, toy.y, toy.beta, toy.omega, toy.activations),
            "mlp_gradients": plot.mlp_gradients(mlp.all_weights, mlp.all_biases, mlp.net_input, mlp.y),
        }
    except ImportError as e:  # matplotlib is missing; the message says how to install it
        print(f"{PACKAGE} plot: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, fig in figures.items():
            for suffix in ("png", "svg"):
                path = out / f"{name}.{suffix}"
                # No date in the SVG: the same inputs give the same file.
                metadata = {"Date": None} if suffix == "svg" else None
                fig.savefig(path, dpi=150, metadata=metadata)
                print(path)
    except OSError as e:
        print(f"{PACKAGE} plot: cannot write into {out}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
