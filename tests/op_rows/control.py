"""Rows for the control-flow primitives (cond, while_loop, scan) and the autodiff plumbing
primitives (custom_vjp, with_derivative)."""
import numpy as np

import s4tf_py as s4
from optable import FLOATS, row


def _np_scan(c, xs, w):
    ys = []
    for x in xs:
        ys.append(c)
        c = np.tanh(c * w + x)
    return c, np.stack(ys)


row("scan_rnn", "scan",
    lambda c, xs, w: s4.scan(lambda c, x: (s4.tanh(c * w + x), c), c, xs),
    lambda c, xs, w: _np_scan(c, xs, w),
    [((3,), (5, 3), (3,)), ((), (4,), ())], dtypes=FLOATS, low=-1, high=1)

row("scan_reverse_no_xs", "scan",
    lambda c: s4.scan(lambda c, _: (c * 0.5 + 1.0, c * c), c, None, length=3, reverse=True),
    lambda c: (((c * 0.5 + 1.0) * 0.5 + 1.0) * 0.5 + 1.0,
               np.stack([((c * 0.5 + 1.0) * 0.5 + 1.0) ** 2, (c * 0.5 + 1.0) ** 2, c * c])),
    [((2,),)], dtypes=FLOATS)


def _cond(p, x):
    return s4.cond(p.sum() > 0, lambda a: s4.sin(a) * 2.0, lambda a: a * a, x)


row("cond", ("cond", "reduce_sum", "gt"), _cond,
    lambda p, x: np.sin(x) * 2.0 if p.sum() > 0 else x * x,
    [((3,), (3,)), ((2,), (2, 2))], dtypes=FLOATS, extra={"grad_args": (1,)})

row("while_loop", "while_loop",
    lambda x: s4.while_loop(lambda c: s4.max(c) < 100.0, lambda c: c * 3.0, x),
    lambda x: _np_while(x), [((3,),)], dtypes=FLOATS, low=1.0, high=2.0, differentiable=False)


def _np_while(x):
    while x.max() < 100.0:
        x = x * 3.0
    return x


@s4.differentiable
def _cube(x):
    return x * x * x


@s4.derivative(of=_cube)
def _cube_vjp(x):
    return x * x * x, lambda ct: ct * 3.0 * x * x


row("custom_vjp", "custom_vjp", lambda x: _cube(x), lambda x: x ** 3, [((4,),), ((2, 3),)],
    dtypes=FLOATS)

row("with_derivative", "with_derivative", lambda x: s4.with_derivative(x, lambda ct: ct) * 2.0,
    lambda x: x * 2.0, [((4,),)], dtypes=FLOATS)
