"""The ``s4tf`` command (``python -m s4tf_py`` is the same).

Subcommands::

    s4tf demo [--epochs N ...]     train a small MLP on scikit-learn's digits (s4tf_py.demo)
    s4tf ir                        print the IR of a built-in example (a dense layer)
    s4tf ir --example sgd-step     ... or of the demo's whole SGD step (forward, gradient, update)
    s4tf ir --expr "a*b+1" --shape 2,3 [--dtype float32] [--optimize]
    s4tf bench [names...]          run the ratio benchmarks in benchmarks/ (a source checkout)
    s4tf train | generate | validate   not available yet: each says which issue brings it
"""
from __future__ import annotations

import argparse
import ast
import os
import sys

#: commands that later issues bring, with the message they print until then
PENDING = {
    "train": "arrives with issue 6 (Gemma 2/3: `s4tf train gemma ...`; the training loop "
             "itself is issue 5)",
    "generate": "arrives with issue 6 (Gemma 2/3 text generation: `s4tf generate gemma ...`)",
    "validate": "arrives with the validation-suite issue that follows issue 6 (the 30 models of "
                "S4TF's catalogue)",
}


# ---- ir -----------------------------------------------------------------------------------------

_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Call, ast.Name,
    ast.Load, ast.Constant, ast.Attribute, ast.keyword, ast.Tuple, ast.List, ast.Subscript,
    ast.Slice, ast.IfExp, ast.operator, ast.unaryop, ast.cmpop, ast.boolop,
)


def _parse_expr(expr: str):
    """(compiled code, input names in order of first use) for a restricted expression."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as e:
        raise SystemExit(f"s4tf ir: cannot parse --expr {expr!r}: {e.msg}") from None
    import s4tf_py as s4
    inputs: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise SystemExit(f"s4tf ir: --expr may not contain {type(node).__name__} nodes")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise SystemExit(f"s4tf ir: --expr may not use the private attribute {node.attr!r}")
    # names in source order: functions of s4tf_py (exp, sum, matmul, ...) or inputs
    names = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Name)),
                   key=lambda n: (n.lineno, n.col_offset))
    for n in names:
        if n.id.startswith("_"):
            raise SystemExit(f"s4tf ir: --expr may not use the name {n.id!r}")
        if n.id in ("s4",) or (hasattr(s4, n.id) and not n.id.isupper() and len(n.id) > 1
                               and callable(getattr(s4, n.id))):
            continue
        if n.id not in inputs:
            inputs.append(n.id)
    return compile(tree, "<--expr>", "eval"), inputs


def _parse_shape(text: str) -> tuple[int, ...]:
    text = text.strip().strip("()[]")
    if text in ("", "scalar"):
        return ()
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        raise SystemExit(f"s4tf ir: --shape {text!r} is not a comma-separated list of "
                         "sizes, e.g. 2,3") from None
    if any(s < 0 for s in shape):
        raise SystemExit(f"s4tf ir: --shape {text!r} has a negative size")
    return shape


def _example_dense():
    import s4tf_py as s4

    def dense_relu(x, w, b):
        return s4.relu(x @ w + b)
    return dense_relu, (s4.ones((4, 8)), s4.ones((8, 3)), s4.zeros((3,)))


def _example_sgd_step():
    import s4tf_py as s4
    from s4tf_py import demo
    model = demo.make_model(0, hidden=8)
    x = s4.zeros((4, demo.INPUTS))
    y = s4.zeros((4,), dtype=s4.int32)
    return demo.train_step, (model, x, y, 0.1)


EXAMPLES = {"dense": _example_dense, "sgd-step": _example_sgd_step}


def cmd_ir(args) -> int:
    import s4tf_py as s4
    if args.expr is None:
        fn, inputs = EXAMPLES[args.example]()
        _print_ir(s4.trace(fn, *inputs, optimize=args.optimize or args.backend == "llvm"), args)
        return 0
    code, names = _parse_expr(args.expr)
    shapes = [_parse_shape(s) for s in (args.shape or ["2,3"])]
    if len(shapes) == 1:
        shapes = shapes * len(names)
    elif len(shapes) != len(names):
        raise SystemExit(f"s4tf ir: --expr uses {len(names)} inputs ({', '.join(names)}) but "
                         f"{len(shapes)} --shape options were given (give one for all, or one "
                         "per input in order of first use)")
    try:
        dtype = s4.dtypes.canonical(args.dtype)
    except Exception:  # noqa: BLE001 - report any bad name the same way
        raise SystemExit(f"s4tf ir: unknown --dtype {args.dtype!r}") from None
    namespace = {k: getattr(s4, k) for k in dir(s4) if not k.startswith("_")}
    namespace["s4"] = s4

    def expression(*values):
        env = dict(namespace)
        env.update(zip(names, values))
        return eval(code, {"__builtins__": {}}, env)  # noqa: S307 - restricted by _parse_expr

    expression.__name__ = "expr"
    inputs = [s4.zeros(shape, dtype=dtype) for shape in shapes]
    try:
        fn = s4.trace(expression, *inputs, optimize=args.optimize or args.backend == "llvm")
    except s4.S4TFError as e:
        print(f"s4tf ir: {e}", file=sys.stderr)
        return 1
    _print_ir(fn, args)
    return 0


def _print_ir(fn, args) -> None:
    """The IR; with ``--backend llvm`` also the fusion plan and the kernels' LLVM IR."""
    print(fn)
    if args.backend != "llvm":
        return
    from .backends.llvm import executable
    print("\n; ---- fusion plan (llvm) ----")
    for kind, step in executable.plan(fn):
        if kind == "group":
            names = ", ".join(e.prim.name for e in step.eqns)
            red = f", reducing {step.reduce_ndim} trailing axes" if step.reduce_ndim else ""
            print(f"; kernel over {list(step.shape)}{red}: {names}")
        elif kind == "dot":
            print(f"; BLAS gemm: {step.prim.name} {step.inputs[0].aval} x {step.inputs[1].aval}")
        elif kind == "conv":
            print(f"; conv kernel: {step.inputs[0].aval} * {step.inputs[1].aval}")
        else:
            print(f"; host step: {step.prim.name}")
    print("\n; ---- kernels (LLVM IR, before optimization) ----")
    print(executable.kernel_module_text(fn))


# ---- bench --------------------------------------------------------------------------------------

def _benchmarks_dir() -> str | None:
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.environ.get("S4TF_BENCHMARKS_DIR"), os.path.join(here, os.pardir, "benchmarks"),
                 os.path.join(os.getcwd(), "benchmarks")):
        if cand and os.path.isfile(os.path.join(cand, "run.py")):
            return os.path.abspath(cand)
    return None


def cmd_bench(args) -> int:
    where = _benchmarks_dir()
    if where is None:
        print("s4tf bench: benchmarks/ was not found. The benchmarks ship with the source "
              "checkout (run `s4tf bench` or `make bench` there, or set S4TF_BENCHMARKS_DIR).",
              file=sys.stderr)
        return 2
    import importlib.util
    spec = importlib.util.spec_from_file_location("s4tf_benchmarks_run", os.path.join(where, "run.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return int(mod.main(args.rest) or 0)


# ---- the command --------------------------------------------------------------------------------

def cmd_demo(args) -> int:
    from . import demo
    return int(demo.main(args.rest) or 0)


def _runner(name):
    """The function that runs the subcommand ``name``."""
    if name == "demo":
        return cmd_demo
    if name == "bench":
        return cmd_bench
    if name == "ir":
        return cmd_ir
    return _pending(name)


def _pending(name):
    def run(args) -> int:
        print(f"s4tf {name}: not available yet: {PENDING[name]}", file=sys.stderr)
        return 2
    return run


def build_parser() -> argparse.ArgumentParser:
    import s4tf_py
    ap = argparse.ArgumentParser(
        prog="s4tf", description="s4tf_py: Swift for TensorFlow's ideas in Python.")
    ap.add_argument("--version", action="version", version=f"s4tf_py {s4tf_py.__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="train a small MLP on the embedded digits data",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("ir", help="print the IR of an example or of --expr")
    p.add_argument("--expr", help='an expression over named inputs, e.g. "a*b+1" or '
                                  '"exp(x).sum(axis=0)"')
    p.add_argument("--shape", action="append",
                   help="input shape, e.g. 2,3 (one for every input, or one per input in order "
                        "of first use; default 2,3)")
    p.add_argument("--dtype", default="float32", help="input dtype (float32)")
    p.add_argument("--example", choices=sorted(EXAMPLES), default="dense",
                   help="the built-in example when --expr is not given (dense)")
    p.add_argument("--optimize", action="store_true", help="print the IR after the passes")
    p.add_argument("--backend", choices=("reference", "llvm"), default="reference",
                   help="llvm: also print the fusion plan and the kernels' LLVM IR")
    p.set_defaults(run=cmd_ir)

    p = sub.add_parser("bench", help="run the ratio benchmarks (benchmarks/run.py)",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(run=cmd_bench)

    for name in PENDING:
        p = sub.add_parser(name, help=f"not available yet ({PENDING[name].split(' (')[0]})")
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(run=_runner(name))
    return ap


#: subcommands whose arguments go, unparsed, to their own parser
_PASS_THROUGH = ("demo", "bench", *PENDING)


def _main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = build_parser()
    if argv and argv[0] in _PASS_THROUGH:
        # argparse's REMAINDER does not take a leading "--option": hand these over directly
        args = argparse.Namespace(command=argv[0], rest=argv[1:])
        return int(_runner(argv[0])(args) or 0)
    args = ap.parse_args(argv)
    if getattr(args, "run", None) is None:
        ap.print_help()
        return 2
    return int(args.run(args) or 0)


def main(argv=None) -> int:
    """Run ``s4tf`` with ``argv`` (default: the command line); returns the exit status.

    Quiet when its output pipe closes early (``s4tf ir | head``).
    """
    try:
        return _main(argv)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
