"""s4tf_py's intermediate representation: primitives, the lazy graph, functions, passes."""
from .function import Eqn, Function, Var
from .registry import AVal, Primitive, REGISTRY, all_primitives, define, get, type_str

__all__ = ["AVal", "Primitive", "REGISTRY", "all_primitives", "define", "get", "type_str",
           "Function", "Eqn", "Var"]
