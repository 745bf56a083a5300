"""Lazy tracing: materialization, the executable caches, barrier, compile, trace and metrics."""
from .compile import CompiledFunction, compile, is_tracing, trace
from .materialize import barrier, clear_caches, materialize, to_host, transfer
from .metrics import metrics, reset_metrics

__all__ = ["CompiledFunction", "compile", "trace", "is_tracing", "barrier", "clear_caches",
           "materialize", "to_host", "transfer", "metrics", "reset_metrics"]
