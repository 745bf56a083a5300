"""The ``s4tf`` command (``python -m s4tf_py`` is the same).

Subcommands::

    s4tf demo [--minutes M ...]    train the tiny Gemma 3 on the embedded corpus for a few
                                   minutes, then generate from it (s4tf_py.demo)
    s4tf demo --mlp [--epochs N]   the first demo: a small MLP on scikit-learn's digits
    s4tf train gemma --preset gemma3-tiny --steps N [--data PATH] [--teacher DIR] [--bf16]
                     [--out DIR] [--seq-len L] [--batch-size B] [--lr LR] ...
                                   train a Gemma causal LM (s4tf_models.gemma.train); writes a
                                   Hugging Face folder with its tokenizer.model
    s4tf generate gemma --checkpoint DIR --prompt "..." [--max-new-tokens N] [--temperature T]
                     [--top-k K] [--top-p P] [--seed S]
                                   continue a prompt, streaming tokens as they are produced
    s4tf ir                        print the IR of a built-in example (a dense layer)
    s4tf ir --example sgd-step     ... or of the demo's whole SGD step (forward, gradient, update)
    s4tf ir --expr "a*b+1" --shape 2,3 [--dtype float32] [--optimize]
    s4tf bench [names...]          run the ratio benchmarks in benchmarks/ (a source checkout)
    s4tf validate                  not available yet: it says which issue brings it

Importing this module is cheap: ``s4tf_py`` and ``s4tf_models`` are imported by the commands
that need them, when they run.
"""
from __future__ import annotations

import argparse
import importlib
import ast
import os
import sys

#: commands that later issues bring, with the message they print until then
PENDING = {
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
        elif executable._native_scatter(step) or executable._native_copy(step):
            print(f"; runtime step (in the run of kernels): {step.prim.name}")
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


# ---- train / generate (Gemma) -------------------------------------------------------------------

#: the models `s4tf train` and `s4tf generate` know
MODELS = ("gemma",)


def _model_name(command: str, rest: list[str]) -> tuple[str | None, list[str]]:
    """(model name, remaining arguments), or (None, ...) after printing why there is none."""
    if not rest or rest[0] in ("-h", "--help"):
        print(f"usage: s4tf {command} MODEL [options]   (MODEL: {', '.join(MODELS)}; "
              f"`s4tf {command} gemma --help` lists the options)",
              file=sys.stdout if rest else sys.stderr)
        return None, rest
    if rest[0] not in MODELS:
        print(f"s4tf {command}: unknown model {rest[0]!r}; choose from {', '.join(MODELS)} "
              f"(e.g. `s4tf {command} gemma --help`)", file=sys.stderr)
        return None, rest
    return rest[0], rest[1:]


def train_parser() -> argparse.ArgumentParser:
    """The options of ``s4tf train gemma``."""
    ap = argparse.ArgumentParser(
        prog="s4tf train gemma",
        description="Train a Gemma causal LM on the embedded corpus (Python's standard-library "
        "documentation) or your own UTF-8 text: AdamW with warmup + cosine learning rate, "
        "gradient clipping, periodic held-out loss, resumable checkpoints, a progress bar, and "
        "a generated sample at the end. With --teacher, knowledge distillation as Gemma 3 was "
        "trained (256 token ids sampled per position by teacher probability).")
    ap.add_argument("--preset", default="gemma3-tiny",
                    help="model size: gemma3-tiny, gemma3-small, gemma2-tiny or a published "
                         "size (default gemma3-tiny)")
    ap.add_argument("--steps", type=int, default=300, help="training steps (300)")
    ap.add_argument("--data", help="a UTF-8 text file or a folder of them (default: the "
                                   "embedded corpus)")
    ap.add_argument("--tokenizer", help="a SentencePiece tokenizer.model (default: the embedded "
                                        "1,024-piece one)")
    ap.add_argument("--teacher", metavar="DIR",
                    help="distill from this Gemma checkpoint folder (same vocabulary)")
    ap.add_argument("--distill-samples", type=int, default=256,
                    help="teacher ids sampled per position (256, as Gemma 3)")
    ap.add_argument("--bf16", action="store_true",
                    help="bfloat16 forward/backward, float32 master weights and loss")
    ap.add_argument("--out", metavar="DIR",
                    help="where the trained model goes as a Hugging Face folder with its "
                         "tokenizer.model; checkpoints go to DIR/checkpoints "
                         "(default: gemma-PRESET)")
    ap.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (128)")
    ap.add_argument("--batch-size", type=int, default=8, help="sequences per step (8)")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (3e-3)")
    ap.add_argument("--min-lr-ratio", type=float, default=0.1,
                    help="final learning rate as a fraction of the peak (0.1)")
    ap.add_argument("--warmup-steps", type=int, default=None,
                    help="linear warmup steps (default min(100, steps/10))")
    ap.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (0.1)")
    ap.add_argument("--clip-norm", type=float, default=1.0,
                    help="clip the gradient's global norm to this (1.0; 0 turns it off)")
    ap.add_argument("--eval-every", type=int, default=50,
                    help="steps between held-out evaluations (50)")
    ap.add_argument("--eval-batches", type=int, default=4,
                    help="held-out batches per evaluation (4)")
    ap.add_argument("--checkpoint-every", type=int, default=None,
                    help="steps between checkpoints (default: --eval-every)")
    ap.add_argument("--no-checkpoints", action="store_true", help="write no checkpoints")
    ap.add_argument("--no-resume", action="store_true",
                    help="start over even if DIR/checkpoints holds a run to resume")
    ap.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                    help="stop when this much time has passed (the schedule follows it)")
    ap.add_argument("--seed", type=int, default=0, help="initialization, data order and "
                                                        "sampling seed (0)")
    ap.add_argument("--sample-prompt", default="Return the",
                    help="prompt of the sample generated at the end ('' for none)")
    ap.add_argument("--sample-tokens", type=int, default=48,
                    help="tokens generated for the sample (48)")
    return ap


def cmd_train(rest: list[str]) -> int:
    model, rest = _model_name("train", rest)
    if model is None:
        return 0 if rest and rest[0] in ("-h", "--help") else 2
    args = train_parser().parse_args(rest)
    gt = importlib.import_module("s4tf_models.gemma.train")    # heavy: only now
    out = args.out if args.out is not None else f"gemma-{args.preset}"
    options = gt.TrainOptions(
        preset=args.preset, steps=args.steps, data=args.data, tokenizer=args.tokenizer,
        teacher=args.teacher, distill_samples=args.distill_samples, bf16=args.bf16, out=out,
        seq_len=args.seq_len, batch_size=args.batch_size, lr=args.lr,
        min_lr_ratio=args.min_lr_ratio, warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay, clip_norm=args.clip_norm or None,
        eval_every=args.eval_every, eval_batches=args.eval_batches,
        checkpoint_dir=None if args.no_checkpoints else os.path.join(out, "checkpoints"),
        checkpoint_every=args.checkpoint_every, resume=not args.no_resume,
        time_budget=args.time_budget, seed=args.seed,
        sample_prompt=args.sample_prompt or None, sample_tokens=args.sample_tokens)
    try:
        gt.train(options)
    except (ValueError, FileNotFoundError) as e:
        msg = str(e)
        msg = msg[len("train gemma: "):] if msg.startswith("train gemma: ") else msg
        print(f"s4tf train gemma: error: {msg}", file=sys.stderr)
        return 2
    return 0


def generate_parser() -> argparse.ArgumentParser:
    """The options of ``s4tf generate gemma``."""
    ap = argparse.ArgumentParser(
        prog="s4tf generate gemma",
        description="Continue a prompt with a Gemma checkpoint (a Hugging Face folder, e.g. "
        "one written by `s4tf train gemma`), printing each piece of text as its token is "
        "produced.")
    ap.add_argument("--checkpoint", required=True, metavar="DIR",
                    help="the model folder (config.json, *.safetensors, tokenizer.model)")
    ap.add_argument("--prompt", required=True, help="the text to continue")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="tokens to generate (64)")
    ap.add_argument("--temperature", type=float, default=0.8,
                    help="sampling temperature; 0 is greedy (0.8)")
    ap.add_argument("--top-k", type=int, default=40, help="sample among the k likeliest (40; "
                                                          "0 for all)")
    ap.add_argument("--top-p", type=float, default=None, help="nucleus sampling threshold")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    ap.add_argument("--tokenizer", help="a tokenizer.model, when the folder has none")
    return ap


def cmd_generate(rest: list[str]) -> int:
    model_name, rest = _model_name("generate", rest)
    if model_name is None:
        return 0 if rest and rest[0] in ("-h", "--help") else 2
    args = generate_parser().parse_args(rest)
    folder = args.checkpoint
    if not os.path.isfile(os.path.join(folder, "config.json")):
        print(f"s4tf generate gemma: error: --checkpoint {folder!r} is not a model folder (no "
              "config.json there)", file=sys.stderr)
        return 2
    from s4tf_models import gemma                       # heavy: only now
    from s4tf_models.gemma.train import generate_text
    try:
        model = gemma.load(folder)
        if args.tokenizer is not None:
            tok = gemma.Tokenizer(args.tokenizer)
        elif os.path.isfile(os.path.join(folder, "tokenizer.model")):
            tok = gemma.Tokenizer.from_folder(folder)
        else:
            tok = gemma.Tokenizer.embedded()
            if tok.vocab_size != model.config.vocab_size:
                raise ValueError(f"{folder} has no tokenizer.model and its vocabulary "
                                 f"({model.config.vocab_size}) is not the embedded "
                                 f"tokenizer's ({tok.vocab_size}): pass --tokenizer")
            print("(no tokenizer.model in the folder: using the embedded tokenizer)",
                  file=sys.stderr)
        sys.stdout.write(args.prompt)
        sys.stdout.flush()
        generate_text(model, tok, args.prompt, args.max_new_tokens,
                      temperature=args.temperature, top_k=args.top_k or None,
                      top_p=args.top_p, seed=args.seed, stream=sys.stdout)
    except (ValueError, FileNotFoundError) as e:
        print(f"\ns4tf generate gemma: error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write("\n")
    sys.stdout.flush()
    return 0


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
    if name == "train":
        return lambda args: cmd_train(args.rest)
    if name == "generate":
        return lambda args: cmd_generate(args.rest)
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

    p = sub.add_parser("demo", help="train the tiny Gemma 3 on the embedded corpus for a few "
                                    "minutes, then generate (--mlp: the digits MLP)",
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

    p = sub.add_parser("train", help="train a model: `s4tf train gemma --help`",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(run=_runner("train"))

    p = sub.add_parser("generate", help="generate text: `s4tf generate gemma --help`",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(run=_runner("generate"))

    for name in PENDING:
        p = sub.add_parser(name, help=f"not available yet ({PENDING[name].split(' (')[0]})")
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(run=_runner(name))
    return ap


#: subcommands whose arguments go, unparsed, to their own parser
_PASS_THROUGH = ("demo", "bench", "train", "generate", *PENDING)


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
