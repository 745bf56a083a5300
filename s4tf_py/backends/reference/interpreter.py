"""Interpret an ``ir.Function`` with each primitive's numpy implementation.

Compiling resolves every equation once (impl, operand slots, params, and which values die
after it); running walks that list. Values are dropped after their last use, which is also what
lets functional updates run in place: a primitive with an ``inplace_operand`` writes into that
operand's buffer when the buffer is referenced by nothing else at that moment (an intermediate
read for the last time, or an input whose buffer the caller donated). CPython's reference count
tells us exactly that, as numpy's own temporary elision does.
"""
from __future__ import annotations

import numpy as np

from ...ir.function import Function
from ..host import run_host_step


class ReferenceExecutable:
    def __init__(self, fn: Function):
        self.fn = fn
        index = {v: i for i, v in enumerate(fn.params)}
        n = len(fn.params)
        last_use: dict = {}
        for pos, e in enumerate(fn.eqns):
            for v in e.inputs:
                last_use[v] = pos
        outputs = set(fn.outputs)
        program = []
        for pos, e in enumerate(fn.eqns):
            ins = tuple(index[v] for v in e.inputs)
            dead = tuple(sorted({index[v] for v in e.inputs
                                 if last_use[v] == pos and v not in outputs}))
            k = e.prim.inplace_operand
            inplace_slot = None
            if k is not None and e.inputs.count(e.inputs[k]) == 1 and index[e.inputs[k]] in dead:
                inplace_slot = k
            outs = tuple(range(n, n + len(e.outs)))
            n += len(e.outs)
            for o, idx in zip(e.outs, outs):
                index[o] = idx
            program.append((e.prim.impl, ins, e.params_dict(), outs, e.prim.multiple_results,
                            dead, inplace_slot, e))
        self.program = program
        self.nvalues = n
        self.outputs = tuple(index[v] for v in fn.outputs)

    def __call__(self, inputs: list):
        """Run on ``inputs`` (a list this call takes over: donated buffers are released)."""
        env = inputs
        env.extend([None] * (self.nvalues - len(env)))
        for impl, ins, params, outs, multi, dead, inplace_slot, eqn in self.program:
            args = [env[i] for i in ins]
            for i in dead:
                env[i] = None
            r = run_host_step(impl, args, params, multi, inplace_slot, eqn)
            del args
            if multi:
                for o, v in zip(outs, r):
                    env[o] = v
            else:
                env[outs[0]] = r
        return [env[i] for i in self.outputs]


class ReferenceBackend:
    name = "reference"

    def compile(self, fn: Function) -> ReferenceExecutable:
        return ReferenceExecutable(fn)

    def from_host(self, array: np.ndarray):
        return array

    def to_host(self, buffer) -> np.ndarray:
        return buffer
