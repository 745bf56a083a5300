"""Inline, branch-free, vectorizable transcendental functions for the LLVM backend.

Why this module exists
----------------------
The x86 backend scalarizes calls to ``expf``/``tanhf`` *and* to the ``llvm.exp``/``llvm.tanh``
intrinsics: a vectorized loop around such a call becomes 16 scalar libm calls per vector.
Measured on the dev machine, a fused ``tanh(a*b+c)`` over 1e7 floats took 167 ms that way
against numpy's 17 ms. So every transcendental here is emitted as straight-line *scalar* IR
made of ``fadd/fmul/fdiv``, integer bit manipulation, ``select`` (no branches) and only those
intrinsics the vectorizer widens into single instructions (``llvm.fabs``, ``llvm.rint``,
``llvm.floor``, ``llvm.sqrt``, ``llvm.fma``, ``llvm.fmuladd``, ``llvm.copysign``). The loop
vectorizer then turns it into 16-wide (float) / 8-wide (double) AVX-512 code.

Public API
----------
``emit(builder, name, args)``
    Emits ``name(*args)`` for scalar ``float`` or ``double`` operands at the builder's insertion
    point and returns the result value. ``FUNCTIONS`` lists the names (plus ``ALIASES``).
``build_unary_kernel(name, dtype)`` / ``build_binary_kernel(name, dtype)``
    JIT a loop ``out[i] = f(x[i])`` (``f(x[i], y[i])``) through the same pass pipeline the backend
    uses (new pass manager, speed level 3, loop + SLP vectorization, host CPU, ``noalias``
    pointers) and return a callable on numpy arrays; its ``optimized_ir`` / ``asm`` attributes
    let tests check that the loop vectorized.
``ERROR_BOUNDS`` / ``ERROR_BOUNDS_F64``
    ``{name: (max_rel_err, max_abs_err)}``, the documented accuracy (see below).

Accuracy contract
-----------------
For an argument ``x`` whose exact result (computed in float64 by numpy/scipy for float32, or by
numpy/scipy/mpmath for float64) is ``ref``, the emitted function returns ``y`` with::

    |y - ref| <= max(max_rel_err * |ref|, max_abs_err) + 2**-149        (float32)
    |y - ref| <= max(max_rel_err * |ref|, max_abs_err) + 2**-1074       (float64)

(the last term is one ulp of the subnormal range, where relative error is meaningless). When
``ref`` overflows the format the result is ``inf`` of the right sign; when ``ref`` is NaN the
result is NaN; ``+-0``, ``+-inf`` and NaN inputs give what numpy gives, including the sign of
zero (odd functions return the input's signed zero; ``erf_inv(-0)`` is ``-0``, where scipy
returns ``+0``). All absolute bounds are currently 0: every function is relatively accurate on
its whole domain, including near its zeros (argument reduction of sin/cos/tan is exact).
The bounds were measured by ``tests/backends/test_llvm_mathlib.py`` (about 3.3 million float32
arguments: every 1531st uint32 bit pattern, a dense sample of [-10, 10], log-spaced values
near 0 and 1, and special values) and rounded up; 1 ulp of float32 is 1.19e-7 relative for a
mantissa near 1 (5.96e-8 near 2).

Algorithms (float32; float64 uses the same structure at higher degree unless noted)
-------------------------------------------------------------------------------------
* exp: ``x = m ln2 + r`` (Cody-Waite, |r| <= ln2/2), ``e^r = 1 + r + r^2 Q(r)``, ``2^m``
  applied as two exponent-field multiplies so that subnormal results and overflow to inf are
  correctly rounded (float64 also carries the reduction's rounding error).
* expm1: same reduction, ``2^m q + (2^m - 1)`` for moderate m, ``scale(1 + q)`` above.
* log: exponent/mantissa split with the mantissa in [sqrt(1/2), sqrt(2)); float32 uses a
  degree-8 polynomial in f = m - 1, float64 fdlibm's ``s = f/(2+f)`` form. Subnormals are
  pre-scaled.
* log1p: ``u = 1 + x``, ``log(u) * x / (u - 1)`` (Goldberg/Kahan), exact pass-through of tiny x.
* tanh: float32: a relative-minimax rational ``x P(x^2) / Q(x^2)`` (degrees 5/4 in x^2) on
  [-9.2, 9.2], clamped outside (as Eigen/XLA do, but fitted for relative error); float64:
  ``t = expm1(2|x|)``, ``tanh = sign(x) t / (t + 2)`` (relative accuracy everywhere).
* logistic: ``e = exp(-|x|)``, ``1/(1+e)`` or ``e/(1+e)`` (no overflow, subnormal tails kept).
* erf: ``x P(x^2)`` for |x| <= 1, ``1 - exp(-x^2) G(x)`` (G ~ erfcx) above, saturating.
* erf_inv: Giles-style: ``w = -log((1-x)(1+x))``, polynomial in ``w`` or ``sqrt(w)`` (float64
  uses three pieces), times x.
* sin/cos/tan: float32 reduces *exactly* for the whole range with a branch-free integer
  Payne-Hanek reduction (24-bit mantissa times a 96-bit window of 2/pi, window words picked by
  selects, no gathers), then evaluates the kernels in double and rounds once. float64 uses a
  4-term Cody-Waite reduction with FMA, accurate for ``|x| < 2**20 * pi/2``; beyond that a
  gather-based Payne-Hanek over a 1216-bit table of 2/pi (see ``_trig_f64``).
* atan/atan2: 3-interval reduction (0, tan(pi/8), tan(3pi/8)) then ``t + t z P(z)``;
  atan2 reduces min(|x|,|y|)/max(|x|,|y|) with the full IEEE/numpy quadrant and zero/inf rules.
* asin/acos: ``t + t z P(z)`` on [0, 1/2], ``pi/2 - 2 asin(sqrt((1-|x|)/2))`` above.
* sinh/cosh: from the exp/expm1 pieces, with the last factor of 2 folded into the exponent so
  results up to the format's max do not overflow early.
* asinh/acosh/atanh: fdlibm formulas on top of ``log1p`` (no cancellation near 0 / 1).
* pow: float32 is computed in double (``exp(y log|x|)`` is then exact to ~1e-13 relative and
  integer powers that are representable come out exact); float64 uses a double-double log and
  an exp that takes the low part. All C99/numpy special cases are handled by selects.
* sqrt: ``llvm.sqrt``; rsqrt: ``1 / llvm.sqrt(x)`` (correctly rounded sqrt, one division).

Coefficients were fitted with mpmath (weighted Chebyshev/Lawson minimax on the stated
interval, the weight turning the error into the function's relative error) and rounded to
the target precision.
"""
from __future__ import annotations

import ctypes
import math
import struct
import threading
from typing import Callable, Sequence

import numpy as np
from llvmlite import ir

__all__ = [
    "emit", "FUNCTIONS", "UNARY", "BINARY", "ALIASES", "ERROR_BOUNDS", "ERROR_BOUNDS_F64",
    "build_unary_kernel", "build_binary_kernel", "create_target_machine", "optimize_module",
]

UNARY = (
    "exp", "expm1", "log", "log1p", "tanh", "logistic", "erf", "erf_inv",
    "sin", "cos", "tan", "atan", "asin", "acos",
    "sinh", "cosh", "asinh", "acosh", "atanh", "sqrt", "rsqrt",
)
BINARY = ("atan2", "pow")
FUNCTIONS = UNARY + BINARY
ALIASES = {
    "sigmoid": "logistic", "expit": "logistic", "erfinv": "erf_inv",
    "arctan": "atan", "arcsin": "asin", "arccos": "acos", "arctan2": "atan2",
    "arcsinh": "asinh", "arccosh": "acosh", "arctanh": "atanh", "power": "pow",
}

# float32: {name: (max relative error, max absolute error)}. Measured maxima (in float32
# ulps of a [1, 2) mantissa, i.e. units of 1.19e-7) are in the comments; the bounds add a
# small margin for arguments the test's ~3.3 million samples did not hit.
ERROR_BOUNDS = {
    "exp": (1.0e-07, 0.0),       # measured 0.69 ulp
    "expm1": (1.5e-07, 0.0),     # measured 1.01 ulp
    "log": (1.0e-07, 0.0),       # measured 0.67 ulp
    "log1p": (2.0e-07, 0.0),     # measured 1.50 ulp
    "tanh": (3.0e-07, 0.0),      # measured 2.23 ulp
    "logistic": (2.0e-07, 0.0),  # measured 1.49 ulp
    "erf": (1.5e-07, 0.0),       # measured 0.93 ulp
    "erf_inv": (2.5e-07, 0.0),   # measured 1.81 ulp
    "sin": (7.0e-08, 0.0),       # measured 0.50 ulp
    "cos": (7.0e-08, 0.0),       # measured 0.50 ulp
    "tan": (7.0e-08, 0.0),       # measured 0.50 ulp
    "atan": (1.8e-07, 0.0),      # measured 1.24 ulp
    "asin": (2.2e-07, 0.0),      # measured 1.60 ulp
    "acos": (1.6e-07, 0.0),      # measured 1.16 ulp
    "atan2": (1.8e-07, 0.0),     # measured 1.25 ulp
    "sinh": (2.0e-07, 0.0),      # measured 1.38 ulp
    "cosh": (1.5e-07, 0.0),      # measured 0.99 ulp
    "asinh": (2.5e-07, 0.0),     # measured 1.73 ulp
    "acosh": (2.5e-07, 0.0),     # measured 1.69 ulp
    "atanh": (2.5e-07, 0.0),     # measured 1.84 ulp
    "pow": (7.0e-08, 0.0),       # measured 0.50 ulp
    "sqrt": (6.0e-08, 0.0),      # measured 0.50 ulp
    "rsqrt": (1.0e-07, 0.0),     # measured 0.75 ulp
}

# float64, measured against numpy/scipy in float64 (whose own error, up to ~1 ulp, is
# included). pow: ~1 ulp + |y log x| * 1.2e-17 (7.9e-15 at |y log x| ~ 700); its
# representable integer powers (|y| < 128) are exact.
ERROR_BOUNDS_F64 = {
    "exp": (3.0e-16, 0.0),
    "expm1": (3.0e-16, 0.0),
    "log": (3.0e-16, 0.0),
    "log1p": (5.0e-16, 0.0),
    "tanh": (5.0e-16, 0.0),
    "logistic": (4.5e-16, 0.0),
    "erf": (5.0e-16, 0.0),
    "erf_inv": (1.0e-15, 0.0),
    "sin": (3.0e-16, 0.0),
    "cos": (4.0e-16, 0.0),
    "tan": (6.0e-16, 0.0),
    "atan": (3.5e-16, 0.0),
    "asin": (5.0e-16, 0.0),
    "acos": (3.0e-16, 0.0),
    "atan2": (3.5e-16, 0.0),
    "sinh": (5.0e-16, 0.0),
    "cosh": (3.0e-16, 0.0),
    "asinh": (5.0e-16, 0.0),
    "acosh": (6.0e-16, 0.0),
    "atanh": (5.0e-16, 0.0),
    "pow": (1.2e-14, 0.0),
    "sqrt": (1.2e-16, 0.0),
    "rsqrt": (2.3e-16, 0.0),
}

# --------------------------------------------------------------------------------------------
# Coefficients (low degree first). See the module docstring for how they were obtained.
# --------------------------------------------------------------------------------------------
# e^r = 1 + r + r^2 Q(r), |r| <= ln2/2
_EXP_Q_32 = (0.5, 0.16666667163372040, 0.041666463017463684, 0.008333289809525013,
             0.0013933637039735913, 0.00019905188621487468)
_EXP_Q_64 = (0.5, 0.1666666666666667, 0.041666666666666685, 0.008333333333326141,
             0.0013888888888875764, 0.0001984126987479843, 2.4801587344157036e-05,
             2.7557255428034377e-06, 2.755725594152554e-07, 2.5105205527211727e-08,
             2.0920580341075713e-09)
# log(1+f) = f - f^2/2 + f^3 P(f), f in [sqrt(.5)-1, sqrt(2)-1]
_LOG_P_32 = (0.3333331048488617, -0.24999986588954926, 0.20002235472202301,
             -0.16669219732284546, 0.14218547940254211, -0.12384860217571259,
             0.11874008178710938, -0.11786648631095886, 0.06909238547086716)
# fdlibm form: R(z) = z * P(z), z = s^2, s = f/(2+f)
_LOG_R_64 = (0.666666666666667, 0.3999999999989865, 0.28571428626314843, 0.22222211085639493,
             0.18182892344052543, 0.15331624445003908, 0.1461754946383237)
# float32 tanh(x) = x P(z) / Q(z), z = x^2, |x| <= 9.2 (relative minimax, Lawson-weighted
# linearized rational fit; 2.6e-8 relative after rounding the coefficients to float32)
_TANH_P_32 = (1.0, 0.13671432435512543, 0.003857700852677226, 2.779330861812923e-05,
              3.007183124736912e-08, -1.1825276868826506e-11)
_TANH_Q_32 = (1.0, 0.47004765272140503, 0.027206938713788986, 0.00039199026650749147,
              1.2724250382234459e-06)
# the same at degree 8 for pow's double-double log (3.7e-17, limited by 2/3 in double; the
# constant term is applied in two parts there)
_LOG_R_DD = (0.6666666666666666, 0.3999999999999999, 0.2857142857143541, 0.2222222221984514,
             0.1818181859547049, 0.15384575000941358, 0.13335643942903777, 0.11688013442028822,
             0.11882932860519925)
# atan(t) = t + t z P(z), z = t^2, |t| <= tan(pi/8)
_ATAN_P_32 = (-0.3333331644535065, 0.19998483359813690, -0.14243764221668243,
              0.10595508664846420, -0.06082407385110855)
_ATAN_P_64 = (-0.333333333333332, 0.19999999999953869, -0.142857142802258, 0.11111110785062797,
              -0.09090897807869087, 0.07692061167602038, -0.06663115431013128,
              0.058479752752723435, -0.050397032261030025, 0.038074910702104774,
              -0.017918740863800988)
# asin(t) = t + t z P(z), z = t^2, |t| <= 1/2
_ASIN_P_32 = (0.16666659712791443, 0.07500516623258591, 0.044514965265989304,
              0.03182242810726166, 0.014388246089220047, 0.037581354379653931)
_ASIN_P_64 = (0.1666666666666676, 0.07499999999970419, 0.04464285717504668, 0.030381942685118804,
              0.022372215649144926, 0.017351599996697786, 0.01398096444845766,
              0.011397743627655658, 0.010786732097690705, 0.003682239551444137,
              0.021765474460129382, -0.021080069046591456, 0.03267859663762816)
# sin(r) = r + r z S(z), cos(r) = 1 - z/2 + z^2 C(z), |r| <= pi/4 (the "_32" set is evaluated
# in double for float32 results).
_SIN_P_32 = (-0.16666666641519878, 0.008333329380216659, -0.0001983933494083258,
             2.718325851101901e-06)
_COS_P_32 = (0.04166666662329773, -0.001388888380220403, 2.4799534057290014e-05,
             -2.721144629638327e-07)
_SIN_P_64 = (-0.16666666666666632, 0.008333333333322363, -0.00019841269829784305,
             2.755731368697284e-06, -2.505075765769489e-08, 1.5896781754232346e-10)
_COS_P_64 = (0.0416666666666666, -0.0013888888888874229, 2.480158728956164e-05,
             -2.755731437823919e-07, 2.087572708816838e-09, -1.1359856521935175e-11)
# erf(x) = x P(x^2), |x| <= 1; P[0] = 2/sqrt(pi) is applied in two parts.
_ERF_P_32 = (1.1283791657367794, -0.37612625956535339, 0.11283586174249649,
             -0.026853859424591064, 0.0051884232088923454, -0.00080110656563192606,
             7.8568287400813401e-05)
_ERF_P_64 = (1.1283791670955126, -0.3761263890318352, 0.11283791670944258, -0.02686617064312383,
             0.0052239776062223365, -0.0008548325934353457, 0.00012055293728212147,
             -1.4924715204381541e-05, 1.6447167187719282e-06, -1.6206584281884935e-07,
             1.3712138599359455e-08, -7.781605332551059e-10)
# erfc(x) = exp(-x^2) G(x - c), G ~ erfcx, x in [1, 4] (c = 2.5) / [1, 6] (c = 3.5)
_ERF_G_32 = (0.21080631017684937, -0.074347563087940216, 0.024939265474677086,
             -0.0079946322366595268, 0.0024732700549066067, -0.00074894190765917301,
             0.00017759905313141644, -7.3505674663465470e-05, 3.1006406788947061e-05,
             1.3741213724331465e-05, 7.0615385993733071e-06)
_ERF_G_64 = (0.15529365560726166, -0.0413235778312754, 0.010661133339910174,
             -0.0026730738275132318, 0.0006526865140781827, -0.00015547282762340048,
             3.6172405158411966e-05, -8.24297032446182e-06, 1.8493664019595592e-06,
             -3.7746854540943367e-07, 1.0106390996724414e-07, -2.371470181907856e-08,
             -1.1469311387457993e-08, -1.1001525288273789e-08, -1.7661014590848258e-09,
             1.724883759942985e-09, 1.587012275730097e-09, 6.336057863843277e-10,
             1.4819143131869207e-10, 1.9573152964174524e-11, 1.182683963278845e-12)
# erfinv(x) / x as a polynomial in (w - c) (central) or (sqrt(w) - c) (tails), w = -log(1-x^2)
_ERFINV_C_32 = (1.5014094114303589, 0.24664027988910675, -0.004177386406809092,
                -0.0012527387589216232, 0.00021834416838828474, -4.96498023494496e-06,
                -3.4626364140422083e-06, 4.6649941509713244e-07, 2.322711978308689e-08,
                -8.813426433107452e-09)   # w in [0, 5), c = 2.5
_ERFINV_T_32 = (2.832976818084717, 1.0016751289367676, 0.009445666335523129,
                -0.007639134768396616, 0.005683389957994223, -0.003588279942050576,
                0.0014951620250940323, -7.429537799907848e-05, -0.0003180907806381583,
                0.00012751584290526807)   # sqrt(w) in [sqrt(5), 4], c = 3
_ERFINV_C_64 = (1.653654562683103, 0.24015818242558953, -0.0060336708714307805,
                -0.0007407025341655332, 0.00018673420803666665, -1.3882523364415543e-05,
                -1.3654692042747758e-06, 4.234787799401811e-07, -2.9070366512679495e-08,
                -4.112634911687169e-09, 1.0512106237182325e-09, -5.415380658684046e-11,
                -1.297464138710754e-11, 2.633442997937595e-12, -8.16134502335553e-14,
                -4.0536821579277307e-14, 6.649197113558187e-15, 2.0250530835422002e-17,
                -1.3419828179649572e-16, 1.1190877894831597e-17, 1.3237879523142216e-18,
                -1.6915172297678362e-19, -4.349615317934773e-21)   # w in [0, 6.25), c = 3.125
_ERFINV_M_64 = (3.0838856104922203, 1.0052589676941597, 0.005370914553603184,
                -0.0037512085075992697, 0.002491442095490136, -0.0016882755552561281,
                0.0009532893909405185, -0.00035503752912570223, 2.403100855962487e-05,
                6.828490431414508e-05, -4.7317708923572814e-05, 1.2475124231378797e-05,
                2.9218840915798524e-06, -4.013518400933262e-06, 1.5054709696148443e-06,
                1.7881653775893598e-08, -2.7775055507652573e-07, 9.090740066738426e-08,
                3.226836005544606e-09)   # sqrt(w) in [2.5, 4), c = 3.25
_ERFINV_T_64 = (4.8499064014085835, 1.010300464864534, -0.00013871931831950445,
                -0.00021503011927730118, 7.599527670438837e-05, -1.968177839877032e-05,
                4.526065000627152e-06, -9.929811263286594e-07, 2.2899615821134704e-07,
                -6.771642322190551e-08, 2.9164808182199303e-08, -1.4953569087149924e-08,
                7.59767040653097e-09, -3.794212806051805e-09, 1.517613073329819e-09,
                -2.5418064187990955e-10, -2.9319262170893184e-11)   # sqrt(w) in [4, 6.01], c = 5

# 2/pi, 1200 bits after the binary point (hex), for Payne-Hanek reduction.
_TWO_OVER_PI_HEX = (
    "a2f9836e4e441529fc2757d1f534ddc0db6295993c439041fe5163abdebbc561b7246e3a424"
    "dd2e006492eea09d1921cfe1deb1cb129a73ee88235f52ebb4484e99c7026b45f7e413991d6"
    "39835339f49c845f8bbdf9283b1ff897ffde05980fef2f118b5a0a6d1f6d367ecf27cb09b74"
    "f463f669e5fea2d7527bac7ebe5f17b3d0739f78a5292ea6bfb5fb11f8d5d0856033046fc7b")
_TWO_OVER_PI_BITS = 1200


def _two_over_pi_word(i: int) -> int:
    """U[i] = floor((2/pi) * 2**(32 i)) mod 2**32 (U[0] = 0)."""
    if i <= 0:
        return 0
    v = int(_TWO_OVER_PI_HEX, 16)
    shift = _TWO_OVER_PI_BITS - 32 * i
    return (v >> shift) & 0xFFFFFFFF if shift >= 0 else (v << -shift) & 0xFFFFFFFF


def _f32(v: float) -> float:
    return struct.unpack("<f", struct.pack("<f", v))[0]


_LN2 = math.log(2.0)
_PI = math.pi


# --------------------------------------------------------------------------------------------
# The emitter
# --------------------------------------------------------------------------------------------
class _F:
    """Scalar IR helpers for one floating type (float or double)."""

    def __init__(self, b: ir.IRBuilder, ty):
        self.b = b
        self.ty = ty
        self.d = isinstance(ty, ir.DoubleType)
        if not self.d and not isinstance(ty, ir.FloatType):
            raise TypeError(f"mathlib supports float and double, not {ty}")
        self.w = 64 if self.d else 32
        self.it = ir.IntType(self.w)
        self.nm = 52 if self.d else 23          # explicit mantissa bits
        self.bias = 1023 if self.d else 127
        self.sfx = "f64" if self.d else "f32"
        self.m = b.module

    # constants ------------------------------------------------------------------------------
    def c(self, v) -> ir.Constant:
        v = float(v)
        if not self.d and math.isfinite(v):
            v = _f32(v)
        return ir.Constant(self.ty, v)

    def i(self, v: int, w: int | None = None) -> ir.Constant:
        w = w or self.w
        v &= (1 << w) - 1
        if v >= 1 << (w - 1):
            v -= 1 << w
        return ir.Constant(ir.IntType(w), v)

    def inf(self):
        return self.c(math.inf)

    def nan(self):
        return self.c(math.nan)

    # intrinsics ---------------------------------------------------------------------------
    def call(self, name: str, *args, ty=None):
        ty = ty or args[0].type
        sfx = "f64" if isinstance(ty, ir.DoubleType) else "f32"
        full = f"llvm.{name}.{sfx}"
        fn = self.m.globals.get(full)
        if fn is None:
            fn = ir.Function(self.m, ir.FunctionType(ty, [ty] * len(args)), name=full)
        return self.b.call(fn, list(args))

    # arithmetic -------------------------------------------------------------------------------
    def add(self, a, b):
        return self.b.fadd(a, b)

    def sub(self, a, b):
        return self.b.fsub(a, b)

    def mul(self, a, b):
        return self.b.fmul(a, b)

    def div(self, a, b):
        return self.b.fdiv(a, b)

    def neg(self, a):
        return self.b.fneg(a)

    def fma(self, a, b, c):
        """Exactly fused a*b+c (needed for error-free transformations)."""
        return self.call("fma", a, b, c)

    def mad(self, a, b, c):
        """a*b+c, fused when the target has FMA (polynomials)."""
        return self.call("fmuladd", a, b, c)

    def abs(self, a):
        return self.call("fabs", a)

    def rint(self, a):
        return self.call("rint", a)

    def floor(self, a):
        return self.call("floor", a)

    def sqrt(self, a):
        return self.call("sqrt", a)

    def copysign(self, mag, sgn):
        return self.call("copysign", mag, sgn)

    def poly(self, x, coeffs: Sequence[float]):
        acc = self.c(coeffs[-1])
        for cf in reversed(coeffs[:-1]):
            acc = self.mad(acc, x, self.c(cf))
        return acc

    # comparisons / selects ----------------------------------------------------------------
    def lt(self, a, b):
        return self.b.fcmp_ordered("<", a, b)

    def le(self, a, b):
        return self.b.fcmp_ordered("<=", a, b)

    def gt(self, a, b):
        return self.b.fcmp_ordered(">", a, b)

    def ge(self, a, b):
        return self.b.fcmp_ordered(">=", a, b)

    def eq(self, a, b):
        return self.b.fcmp_ordered("==", a, b)

    def ult(self, a, b):                    # a < b or unordered
        return self.b.fcmp_unordered("<", a, b)

    def uge(self, a, b):
        return self.b.fcmp_unordered(">=", a, b)

    def isnan(self, a):
        return self.b.fcmp_unordered("uno", a, a)

    def sel(self, cond, a, b):
        return self.b.select(cond, a, b)

    def or_(self, a, b):
        return self.b.or_(a, b)

    def and_(self, a, b):
        return self.b.and_(a, b)

    def clamp(self, x, lo, hi):
        """min(max(x, lo), hi); NaN maps to lo (so later integer conversions stay defined)."""
        x = self.sel(self.gt(x, self.c(hi)), self.c(hi), x)
        return self.sel(self.ult(x, self.c(lo)), self.c(lo), x)

    # integer/bit helpers --------------------------------------------------------------------
    def bits(self, x):
        return self.b.bitcast(x, self.it)

    def flt(self, i):
        return self.b.bitcast(i, self.ty)

    def toint(self, x):
        return self.b.fptosi(x, self.it)

    def tofloat(self, i):
        return self.b.sitofp(i, self.ty)

    def signbit(self, x):
        return self.b.icmp_signed("<", self.bits(x), self.i(0))

    def pow2i(self, m):
        """2**m for an integer m in the normal exponent range."""
        e = self.b.add(m, self.i(self.bias))
        return self.flt(self.b.shl(e, self.i(self.nm)))

    def _imin(self, a, b):
        return self.b.select(self.b.icmp_signed("<", a, b), a, b)

    def _imax(self, a, b):
        return self.b.select(self.b.icmp_signed(">", a, b), a, b)

    def scale(self, y, m):
        """y * 2**m for ``0.5 <= |y| < 2`` and |m| up to about 2*bias, correctly rounded into
        subnormals / inf — without ever computing a subnormal by multiplication: x86 takes a
        ~150-cycle microcode assist for each one, which made a softmax over masked (mostly
        -inf) scores 6x slower. A subnormal result is built from its bits instead: the
        integer ``rint(|y| * 2**(m + 149))`` (float32) *is* the bit pattern of ``y * 2**m``
        below 2**-125, its sign put back with copysign."""
        lo = -(self.bias - 2)                       # y * 2**m is normal for m >= lo
        m_n = self._imax(m, self.i(lo))             # normal path (clamped: never subnormal)
        m1 = self._imin(m_n, self.i(self.bias))
        m2 = self.b.sub(m_n, m1)
        normal = self.mul(self.mul(y, self.pow2i(m1)), self.pow2i(m2))
        k = self.b.add(m, self.i(self.bias - 1 + self.nm))
        k = self._imin(self._imax(k, self.i(-2)), self.i(self.nm))
        t = self.rint(self.mul(self.abs(y), self.pow2i(k)))
        sub = self.copysign(self.flt(self.toint(t)), y)
        return self.sel(self.b.icmp_signed("<", m, self.i(lo)), sub, normal)

    def finish_nan(self, x, res):
        return self.sel(self.isnan(x), x, res)


class _Math(_F):
    """The function implementations. Every public method takes/returns scalar values."""

    # --- shared pieces ------------------------------------------------------------------------
    def _ln2(self):
        if self.d:   # fdlibm: ln2_hi has 21 trailing zero bits
            return 6.93147180369123816490e-01, 1.90821492927058770002e-10
        return 0.693359375, -2.12194440e-4

    def _exp_reduce(self, x, lo, hi):
        """Clamp x, x = m ln2 + r. Returns (m as int, r, c) with c the rounding error of r
        (float64 only; 0 for float32)."""
        return self._exp_reduce_noclamp(self.clamp(x, lo, hi))

    def _exp_reduce_noclamp(self, xc):
        mf = self.rint(self.mul(xc, self.c(1.0 / _LN2)))
        ln2_hi, ln2_lo = self._ln2()
        nm = self.neg(mf)
        rh = self.fma(nm, self.c(ln2_hi), xc)
        r = self.fma(nm, self.c(ln2_lo), rh)
        cc = self.fma(nm, self.c(ln2_lo), self.sub(rh, r)) if self.d else None
        return self.toint(mf), r, cc

    def _expm1_r(self, r, cc):
        """expm1 of the reduced argument (|r| <= ln2/2): r + r^2 Q(r) (+ c (1 + r))."""
        q = self.poly(r, _EXP_Q_64 if self.d else _EXP_Q_32)
        r2 = self.mul(r, r)
        if cc is None:
            return self.mad(r2, q, r)
        return self.add(r, self.mad(r2, q, self.mad(cc, r, cc)))

    def _exp_limits(self):
        # hi: e^hi overflows after the final scaling; lo: e^lo rounds to +0.
        return (-746.0, 710.0) if self.d else (-104.0, 89.0)

    # --- exp family -------------------------------------------------------------------------
    def exp(self, x):
        lo, hi = self._exp_limits()
        m, r, cc = self._exp_reduce(x, lo, hi)
        p = self._expm1_r(r, cc)
        y = self.add(self.c(1.0), p)
        return self.finish_nan(x, self.scale(y, m))

    def _expm1_parts(self, x, hi):
        lo = -40.0 if self.d else -18.0
        m, r, cc = self._exp_reduce(x, lo, hi)
        p = self._expm1_r(r, cc)
        return m, p

    def expm1(self, x):
        lo, hi = self._exp_limits()
        m, p = self._expm1_parts(x, hi)
        big_thr = 700.0 if self.d else 80.0
        # moderate m: 2^m p + (2^m - 1) (2^m - 1 exact for m <= mantissa bits, and the
        # rounding of larger ones is below the result's ulp). 2^128 is inf: not selected.
        e = self.pow2i(m)
        small = self.mad(e, p, self.sub(e, self.c(1.0)))
        big = self.scale(self.add(self.c(1.0), p), m)
        res = self.sel(self.gt(x, self.c(big_thr)), big, small)
        tiny = 2.0 ** -54 if self.d else 2.0 ** -25
        res = self.sel(self.lt(self.abs(x), self.c(tiny)), x, res)
        return self.finish_nan(x, res)

    def tanh(self, x):
        if not self.d:
            # rational minimax on [-9.2, 9.2] (tanh rounds to +-1 beyond): 9 FMAs + 1 division.
            # Clamping keeps the sign, NaN passes through, x P(0)/Q(0) == x for tiny x.
            hi = self.c(9.2)
            xc = self.sel(self.gt(x, hi), hi, x)
            xc = self.sel(self.lt(xc, self.neg(hi)), self.neg(hi), xc)
            z = self.mul(xc, xc)
            t = self.div(self.mul(xc, self.poly(z, _TANH_P_32)), self.poly(z, _TANH_Q_32))
            # float32 evaluation error can push the result past +-1 near saturation
            one = self.c(1.0)
            t = self.sel(self.gt(t, one), one, t)
            return self.sel(self.lt(t, self.neg(one)), self.neg(one), t)
        # tanh|x| = t / (t + 2), t = expm1(2|x|); the argument is in [0, 44] so the expm1 needs
        # neither its overflow nor its large-negative path: 2^m p + (2^m - 1).
        hi = 22.0                                  # tanh rounds to 1 beyond
        a = self.abs(x)
        a = self.sel(self.ult(a, self.c(hi)), a, self.c(hi))     # NaN -> hi (fixed below)
        a2 = self.add(a, a)
        m, r, cc = self._exp_reduce_noclamp(a2)
        p = self._expm1_r(r, cc)
        e = self.pow2i(m)
        t = self.mad(e, p, self.sub(e, self.c(1.0)))
        res = self.copysign(self.div(t, self.add(t, self.c(2.0))), x)
        return self.finish_nan(x, res)

    def logistic(self, x):
        a = self.abs(x)
        e = self.exp(self.neg(a))
        num = self.sel(self.ge(x, self.c(0.0)), self.c(1.0), e)
        return self.div(num, self.add(self.c(1.0), e))

    def sinh(self, x):
        a = self.abs(x)
        hi = 712.0 if self.d else 90.0
        m, p = self._expm1_parts(a, hi)
        # moderate: t = expm1(a); sinh = (t + t/(t+1)) / 2
        e = self.pow2i(m)
        t = self.mad(e, p, self.sub(e, self.c(1.0)))
        mid = self.mul(self.c(0.5), self.add(t, self.div(t, self.add(t, self.c(1.0)))))
        big = self.scale(self.add(self.c(1.0), p), self.b.sub(m, self.i(1)))
        thr = 700.0 if self.d else 80.0
        res = self.sel(self.gt(a, self.c(thr)), big, mid)
        tiny = 2.0 ** -28 if self.d else 2.0 ** -13
        res = self.sel(self.lt(a, self.c(tiny)), a, res)
        return self.finish_nan(x, self.copysign(res, x))

    def cosh(self, x):
        a = self.abs(x)
        hi = 712.0 if self.d else 90.0
        m, r, cc = self._exp_reduce(a, -1.0, hi)
        y = self.add(self.c(1.0), self._expm1_r(r, cc))
        one = self.i(1)
        big = self.scale(y, self.b.sub(m, one))
        small = self.scale(self.div(self.c(1.0), y), self.b.sub(self.b.neg(m), one))
        return self.finish_nan(x, self.add(big, small))

    # --- log family -------------------------------------------------------------------------
    def _log_split(self, x):
        """x > 0 finite -> (k as float, f) with x = 2^k (1 + f), 1 + f in [sqrt(1/2), sqrt(2))."""
        b = self.b
        if self.d:
            tiny_scale, tiny_k, sqrt_half = 54, 54, 0x3FE6A09E667F3BCD
            one_bits, mant_mask = 0x3FF0000000000000, (1 << 52) - 1
        else:
            tiny_scale, tiny_k, sqrt_half = 23, 23, 0x3F3504F3
            one_bits, mant_mask = 0x3F800000, (1 << 23) - 1
        sub = self.lt(x, self.c(2.0 ** (1 - self.bias)))
        xs = self.sel(sub, self.mul(x, self.c(2.0 ** tiny_scale)), x)
        kadj = self.sel(sub, self.i(tiny_k), self.i(0))
        ix = b.add(self.bits(xs), self.i(one_bits - sqrt_half))
        k = b.sub(b.sub(b.ashr(ix, self.i(self.nm)), self.i(self.bias)), kadj)
        iz = b.add(b.and_(ix, self.i(mant_mask)), self.i(sqrt_half))
        f = self.sub(self.flt(iz), self.c(1.0))
        return self.tofloat(k), f

    def _log_specials(self, x, res):
        res = self.sel(self.eq(x, self.inf()), x, res)
        res = self.sel(self.eq(x, self.c(0.0)), self.c(-math.inf), res)
        return self.sel(self.ult(x, self.c(0.0)), self.nan(), res)

    def _log1pf_64(self, f):
        """fdlibm: log(1+f) as f - (hfsq - s (hfsq + R)). Returns (hfsq, s*(hfsq+R))."""
        s = self.div(f, self.add(self.c(2.0), f))
        z = self.mul(s, s)
        R = self.mul(z, self.poly(z, _LOG_R_64))
        hfsq = self.mul(self.c(0.5), self.mul(f, f))
        return hfsq, self.mul(s, self.add(hfsq, R))

    def log(self, x):
        k, f = self._log_split(x)
        ln2_hi, ln2_lo = self._ln2()
        if self.d:
            hfsq, sR = self._log1pf_64(f)
            # k ln2_hi - ((hfsq - (s (hfsq + R) + k ln2_lo)) - f)
            inner = self.sub(self.sub(hfsq, self.mad(k, self.c(ln2_lo), sR)), f)
            res = self.mad(k, self.c(ln2_hi), self.neg(inner))
        else:
            f2 = self.mul(f, f)
            y = self.mul(self.mul(f2, f), self.poly(f, _LOG_P_32))
            y = self.mad(k, self.c(ln2_lo), y)
            y = self.mad(self.c(-0.5), f2, y)
            res = self.mad(k, self.c(ln2_hi), self.add(f, y))
        return self._log_specials(x, res)

    def log1p(self, x):
        one = self.c(1.0)
        u = self.add(one, x)
        lu = self.log(u)
        res = self.mul(lu, self.div(x, self.sub(u, one)))
        res = self.sel(self.eq(u, one), x, res)
        return self.sel(self.eq(u, self.inf()), u, res)

    def asinh(self, x):
        a = self.abs(x)
        one = self.c(1.0)
        big = self.gt(a, self.c(2.0 ** 53 if self.d else 2.0 ** 24))
        a2 = self.mul(a, a)
        arg = self.add(a, self.div(a2, self.add(one, self.sqrt(self.add(one, a2)))))
        arg = self.sel(big, a, arg)
        res = self.add(self.log1p(arg), self.sel(big, self.c(_LN2), self.c(0.0)))
        return self.copysign(res, x)

    def acosh(self, x):
        one = self.c(1.0)
        t = self.sub(x, one)
        big = self.gt(x, self.c(2.0 ** 53 if self.d else 2.0 ** 24))
        arg = self.add(t, self.sqrt(self.mul(t, self.add(t, self.c(2.0)))))
        arg = self.sel(big, x, arg)
        res = self.add(self.log1p(arg), self.sel(big, self.c(_LN2), self.c(0.0)))
        return self.sel(self.lt(x, one), self.nan(), res)

    def atanh(self, x):
        a = self.abs(x)
        two_a = self.add(a, a)
        t1 = self.div(two_a, self.sub(self.c(1.0), a))
        t0 = self.mad(a, t1, two_a)               # 2a + 2a^2/(1-a), for a < 1/2
        t = self.sel(self.lt(a, self.c(0.5)), t0, t1)
        res = self.mul(self.c(0.5), self.log1p(t))
        return self.copysign(res, x)

    # --- trig ---------------------------------------------------------------------------------
    def _sincos_kernel(self, r, sin_c, cos_c):
        z = self.mul(r, r)
        s = self.mad(self.mul(r, z), self.poly(z, sin_c), r)
        c = self.mad(self.mul(z, z), self.poly(z, cos_c),
                     self.mad(self.c(-0.5), z, self.c(1.0)))
        return s, c

    def _trig_finish(self, which, s, c, n):
        """n: quadrant (integer, any width, low two bits used)."""
        b = self.b
        one = ir.Constant(n.type, 1)
        two = ir.Constant(n.type, 2)
        zero = ir.Constant(n.type, 0)
        odd = b.icmp_signed("!=", b.and_(n, one), zero)
        if which == "sin":
            v = self.sel(odd, c, s)
            return self.sel(b.icmp_signed("!=", b.and_(n, two), zero), self.neg(v), v)
        if which == "cos":
            v = self.sel(odd, s, c)
            flip = b.icmp_signed("!=", b.and_(b.add(n, one), two), zero)
            return self.sel(flip, self.neg(v), v)
        num = self.sel(odd, self.neg(c), s)
        den = self.sel(odd, s, c)
        return self.div(num, den)

    def _trig_f32(self, x, which):
        b = self.b
        D = _Math(b, ir.DoubleType())
        i64 = ir.IntType(64)
        ix = self.bits(x)
        ax = b.and_(ix, self.i(0x7FFFFFFF))
        E = b.lshr(ax, self.i(23))
        mant = b.or_(b.and_(ax, self.i(0x7FFFFF)), self.i(0x800000))
        # Payne-Hanek: Y = floor(|x| * 2/pi * 2^62) mod 2^64 from a 96-bit window of 2/pi
        # starting at bit j0 = E - 151 (earlier bits only add multiples of 4).
        t = b.sub(E, self.i(120))
        s = b.and_(t, self.i(31))
        q0 = b.lshr(t, self.i(5))
        sh = b.sub(ir.Constant(i64, 32), b.zext(s, i64))
        pairs = [(_two_over_pi_word(q) << 32) | _two_over_pi_word(q + 1) for q in range(8)]
        eqs = [b.icmp_unsigned("==", q0, self.i(j)) for j in range(5)]
        words = []
        for k in range(3):
            v = D.i(pairs[4 + k], 64)
            for j in range(3, -1, -1):
                v = b.select(eqs[j], D.i(pairs[j + k], 64), v)
            words.append(b.and_(b.lshr(v, sh), ir.Constant(i64, 0xFFFFFFFF)))
        m64 = b.zext(mant, i64)
        Y = b.add(b.add(b.shl(b.mul(m64, words[0]), ir.Constant(i64, 32)), b.mul(m64, words[1])),
                  b.lshr(b.mul(m64, words[2]), ir.Constant(i64, 32)))
        n = b.lshr(b.add(Y, D.i(1 << 61, 64)), ir.Constant(i64, 62))
        rr = b.sub(Y, b.shl(n, ir.Constant(i64, 62)))
        r = D.mul(b.sitofp(rr, D.ty), D.c(math.pi / 2 * 2.0 ** -62))
        neg = b.icmp_signed("<", ix, self.i(0))
        r = D.sel(neg, D.neg(r), r)
        n = b.select(neg, b.neg(n), n)
        xd = b.fpext(x, D.ty)
        small = self.lt(self.abs(x), self.c(0.785398))
        r = D.sel(small, xd, r)
        n = b.select(small, ir.Constant(i64, 0), n)
        s_, c_ = D._sincos_kernel(r, _SIN_P_32, _COS_P_32)
        res = b.fptrunc(D._trig_finish(which, s_, c_, n), self.ty)
        if which != "cos":
            res = self.sel(self.lt(self.abs(x), self.c(2.0 ** -12)), x, res)
        return self.sel(self.uge(self.abs(x), self.inf()), self.nan(), res)

    def _trig_f64(self, x, which):
        b = self.b
        a = self.abs(x)
        # Cody-Waite with four pieces of pi/2 (33 + 33 + 33 + 53 bits, fdlibm's pio2_1..3t).
        lim = 2.0 ** 20 * (math.pi / 2)
        xc = self.sel(self.lt(a, self.c(lim)), x, self.c(0.0))
        k = self.rint(self.mul(xc, self.c(2.0 / math.pi)))
        nk = self.neg(k)
        r = self.fma(nk, self.c(1.57079632673412561417e+00), xc)
        r = self.fma(nk, self.c(6.07710050630396597660e-11), r)
        r = self.fma(nk, self.c(2.02226624871116645580e-21), r)
        r = self.fma(nk, self.c(8.47842766036889956997e-32), r)
        n = self.toint(k)
        r_big, n_big = self._payne_hanek_64(x)
        big = self.uge(a, self.c(lim))
        r = self.sel(big, r_big, r)
        n = b.select(big, n_big, n)
        s_, c_ = self._sincos_kernel(r, _SIN_P_64, _COS_P_64)
        res = self._trig_finish(which, s_, c_, n)
        if which != "cos":
            res = self.sel(self.lt(a, self.c(2.0 ** -27)), x, res)
        return self.sel(self.uge(a, self.inf()), self.nan(), res)

    def _payne_hanek_64(self, x):
        """Exact reduction of a finite double (meant for |x| >= 2^20 pi/2): returns (r, n) with
        x = n pi/2 + r, |r| <= pi/4, r accurate to ~2^-120 absolute.

        With x = M 2^(E-1075) (M < 2^53), y = |x| 2/pi = M sum_j t_j 2^(E-1075-j); bits t_j with
        j < j0 = E - 1076 only add multiples of 4. A 192-bit window W of 2/pi starting at j0 gives
        y 2^62 = M W 2^-128 (mod 2^64): Y = bits [128, 192) of M W (2 integer + 62 fraction
        bits of y), Ylo = bits [64, 128). The six window words come from a constant table of
        32-bit-word pairs (one gather each) and the product is formed in 32-bit columns."""
        b = self.b
        D = self

        def c64(v):
            return D.i(v, 64)
        ix = self.bits(x)
        ax = b.and_(ix, c64(0x7FFFFFFFFFFFFFFF))
        E = b.lshr(ax, c64(52))
        M = b.or_(b.and_(ax, c64((1 << 52) - 1)), c64(1 << 52))
        # window word k ends at bit e_k = j0 + 32 k + 31 = E - 1045 + 32 k; with two words of zero
        # padding in the table its position is t + 32 k, t = E - 981 = 32 q + s.
        t = b.sub(E, c64(981))
        t = b.select(b.icmp_signed("<", t, c64(0)), c64(0), t)     # lanes not selected anyway
        s = b.and_(t, c64(31))
        q = b.lshr(t, c64(5))
        sh = b.sub(c64(32), s)
        tbl = _ph64_table(self.m)
        lo32 = c64(0xFFFFFFFF)
        words = []
        for k in range(6):
            ptr = b.gep(tbl, [ir.Constant(ir.IntType(64), 0), b.add(q, c64(k))], inbounds=True)
            words.append(b.and_(b.lshr(b.load(ptr), sh), lo32))
        mh = b.lshr(M, c64(32))
        ml = b.and_(M, lo32)
        parts: dict = {}
        for k in range(6):                      # w_k has weight 2^(32 (5 - k))
            parts.setdefault(5 - k, []).append(b.mul(ml, words[k]))
            parts.setdefault(6 - k, []).append(b.mul(mh, words[k]))
        carry = c64(0)
        cols = []
        for col in range(6):
            acc = carry
            for v in parts.get(col, []):
                acc = b.add(acc, b.and_(v, lo32))
            for v in parts.get(col - 1, []):
                acc = b.add(acc, b.lshr(v, c64(32)))
            cols.append(b.and_(acc, lo32))
            carry = b.lshr(acc, c64(32))
        Y = b.or_(b.shl(cols[5], c64(32)), cols[4])
        Ylo = b.or_(b.shl(cols[3], c64(32)), cols[2])
        n = b.lshr(b.add(Y, c64(1 << 61)), c64(62))
        Yh = b.sub(Y, b.shl(n, c64(62)))                     # signed, |Yh| <= 2^61
        # (Yh + Ylo 2^-64) as a double-double, in units of 2^-62
        fh = b.sitofp(Yh, self.ty)
        eh = b.sub(Yh, b.fptosi(fh, ir.IntType(64)))          # exact, small
        fl = self.mad(b.uitofp(Ylo, self.ty), self.c(2.0 ** -64), b.sitofp(eh, self.ty))
        pio2_hi, pio2_lo = math.pi / 2, 6.123233995736766e-17
        rh = self.mul(fh, self.c(pio2_hi))
        rl = self.fma(fh, self.c(pio2_hi), self.neg(rh))
        rl = self.mad(fh, self.c(pio2_lo), self.mad(fl, self.c(pio2_hi), rl))
        r = self.mul(self.add(rh, rl), self.c(2.0 ** -62))
        neg = b.icmp_signed("<", ix, c64(0))
        r = self.sel(neg, self.neg(r), r)
        n = b.select(neg, b.neg(n), n)
        return r, n

    def sin(self, x):
        return self._trig_f64(x, "sin") if self.d else self._trig_f32(x, "sin")

    def cos(self, x):
        return self._trig_f64(x, "cos") if self.d else self._trig_f32(x, "cos")

    def tan(self, x):
        return self._trig_f64(x, "tan") if self.d else self._trig_f32(x, "tan")

    # --- inverse trig -----------------------------------------------------------------------
    def _pio2(self):
        if self.d:
            return math.pi / 2, 6.123233995736766e-17
        hi = _f32(math.pi / 2)
        return hi, math.pi / 2 - hi

    def _atan_poly(self, t):
        z = self.mul(t, t)
        return self.mad(self.mul(t, z), self.poly(z, _ATAN_P_64 if self.d else _ATAN_P_32), t)

    def _pio4_parts(self):
        """pi/4 = hi + lo with hi short enough that j*hi is exact for j <= 4."""
        if self.d:
            hi = struct.unpack("<d", struct.pack("<Q", struct.unpack("<Q", struct.pack(
                "<d", math.pi / 4))[0] & ~0xFF))[0]
        else:
            hi = struct.unpack("<f", struct.pack("<I", struct.unpack("<I", struct.pack(
                "<f", math.pi / 4))[0] & ~0xFF))[0]
        return hi, math.pi / 4 - hi

    def _octant_sum(self, j, sgn_neg, p):
        """j pi/4 +- p (j a small non-negative integer value as float), correctly rounded for
        p == 0: j hi (exact) + (j lo +- p)."""
        hi, lo = self._pio4_parts()
        sp = self.sel(sgn_neg, self.neg(p), p)
        return self.add(self.mul(j, self.c(hi)), self.mad(j, self.c(lo), sp))

    def atan(self, x):
        a = self.abs(x)
        one = self.c(1.0)
        big = self.gt(a, self.c(2.414213562373095))
        mid = self.gt(a, self.c(0.41421356237309503))
        num = self.sel(big, self.c(-1.0), self.sel(mid, self.sub(a, one), a))
        den = self.sel(big, a, self.sel(mid, self.add(a, one), one))
        t = self.div(num, den)
        p = self._atan_poly(t)
        j = self.sel(big, self.c(2.0), self.sel(mid, one, self.c(0.0)))
        res = self._octant_sum(j, ir.Constant(ir.IntType(1), 0), p)
        return self.copysign(res, x)

    def atan2(self, y, x):
        b = self.b
        ax, ay = self.abs(x), self.abs(y)
        swap = self.gt(ay, ax)
        num = self.sel(swap, ax, ay)
        den = self.sel(swap, ay, ax)
        both_inf = self.eq(num, self.inf())
        both_zero = self.eq(den, self.c(0.0))
        one = self.c(1.0)
        num = self.sel(both_inf, one, self.sel(both_zero, self.c(0.0), num))
        den = self.sel(b.or_(both_inf, both_zero), one, den)
        # keep num + den finite (exact power-of-two scaling; only the ratio matters)
        huge = self.gt(den, self.c(2.0 ** (self.bias - 4)))
        sc = self.sel(huge, self.c(2.0 ** -8), one)
        num, den = self.mul(num, sc), self.mul(den, sc)
        mid = self.gt(num, self.mul(den, self.c(0.41421356237309503)))
        t = self.div(self.sel(mid, self.sub(num, den), num), self.sel(mid, self.add(num, den), den))
        p = self._atan_poly(t)                   # angle = k1 pi/4 + p, k1 = mid
        # quadrant: swap -> pi/2 - angle; x negative (incl. -0) -> pi - angle. In octants:
        # j = swap ? (neg ? 2 + k1 : 2 - k1) : (neg ? 4 - k1 : k1), sign of p flips when
        # exactly one of swap/neg holds.
        neg = self.signbit(x)
        k1 = self.sel(mid, one, self.c(0.0))
        two, four = self.c(2.0), self.c(4.0)
        j = self.sel(swap, self.sel(neg, self.add(two, k1), self.sub(two, k1)),
                     self.sel(neg, self.sub(four, k1), k1))
        a = self._octant_sum(j, b.xor(swap, neg), p)
        res = self.copysign(a, y)
        return self.sel(b.fcmp_unordered("uno", x, y), self.add(x, y), res)

    def _asin_core(self, x):
        """Returns (p, big, a): p = asin(t) for the reduced t; big means |x| > 1/2 where
        asin(|x|) = pi/2 - 2 p."""
        a = self.abs(x)
        big = self.gt(a, self.c(0.5))
        zb = self.mul(self.c(0.5), self.sub(self.c(1.0), a))
        t = self.sel(big, self.sqrt(zb), x)
        z = self.sel(big, zb, self.mul(x, x))
        p = self.mad(self.mul(t, z), self.poly(z, _ASIN_P_64 if self.d else _ASIN_P_32), t)
        return p, big, a

    def asin(self, x):
        p, big, a = self._asin_core(x)
        h, l = self._pio2()
        bigv = self.add(self.sub(self.c(h), self.add(p, p)), self.c(l))
        res = self.sel(big, self.copysign(bigv, x), p)
        return self.sel(self.gt(a, self.c(1.0)), self.nan(), res)

    def acos(self, x):
        p, big, a = self._asin_core(x)
        h, l = self._pio2()
        two_p = self.add(p, p)
        negv = self.add(self.sub(self.c(2 * h), two_p), self.c(2 * l))
        bigv = self.sel(self.lt(x, self.c(0.0)), negv, two_p)
        smallv = self.add(self.sub(self.c(h), p), self.c(l))
        res = self.sel(big, bigv, smallv)
        return self.sel(self.gt(a, self.c(1.0)), self.nan(), res)

    # --- erf --------------------------------------------------------------------------------
    def erf(self, x):
        a = self.abs(x)
        one = self.c(1.0)
        P = _ERF_P_64 if self.d else _ERF_P_32
        c0 = 2.0 / math.sqrt(math.pi)
        c0_hi = c0 if self.d else _f32(c0)
        c0_lo = c0 - c0_hi
        z = self.mul(x, x)
        # x P(z) = x c0_hi + x (c0_lo + z P1(z))
        q = self.mad(z, self.poly(z, P[1:]), self.c(c0_lo))
        small = self.mad(x, self.c(c0_hi), self.mul(x, q))
        top = 6.0 if self.d else 4.0
        ac = self.sel(self.gt(a, self.c(top)), self.c(top), a)
        ac = self.sel(self.lt(ac, one), one, ac)           # keeps the big branch finite
        G = self.poly(self.sub(ac, self.c(3.5 if self.d else 2.5)),
                      _ERF_G_64 if self.d else _ERF_G_32)
        erfc = self.mul(self.exp(self.neg(self.mul(ac, ac))), G)
        big = self.copysign(self.sub(one, erfc), x)
        res = self.sel(self.gt(a, one), big, small)
        return self.finish_nan(x, self.copysign(res, x))

    def erf_inv(self, x):
        one = self.c(1.0)
        w = self.neg(self.log(self.mul(self.sub(one, x), self.add(one, x))))
        sw = self.sqrt(w)
        if self.d:
            pc = self.poly(self.sub(w, self.c(3.125)), _ERFINV_C_64)
            pm = self.poly(self.sub(sw, self.c(3.25)), _ERFINV_M_64)
            pt = self.poly(self.sub(sw, self.c(5.0)), _ERFINV_T_64)
            p = self.sel(self.lt(w, self.c(6.25)), pc, self.sel(self.lt(w, self.c(16.0)), pm, pt))
        else:
            pc = self.poly(self.sub(w, self.c(2.5)), _ERFINV_C_32)
            pt = self.poly(self.sub(sw, self.c(3.0)), _ERFINV_T_32)
            p = self.sel(self.lt(w, self.c(5.0)), pc, pt)
        res = self.mul(p, x)
        res = self.sel(self.eq(self.abs(x), one), self.mul(x, self.inf()), res)
        return self.sel(self.gt(self.abs(x), one), self.nan(), res)

    # --- pow ----------------------------------------------------------------------------------
    def pow(self, x, y):
        b = self.b
        one = self.c(1.0)
        if self.d:
            core = self._pow_core_64(x, y)
        else:
            D = _Math(b, ir.DoubleType())
            xd, yd = b.fpext(x, D.ty), b.fpext(y, D.ty)
            core = b.fptrunc(D.exp(D.mul(yd, D.log(D.abs(xd)))), self.ty)
        ay = self.abs(y)
        y_fin = self.lt(ay, self.inf())
        fy = self.floor(y)
        y_int = b.and_(self.eq(fy, y), y_fin)
        half = self.mul(y, self.c(0.5))
        y_odd = b.and_(y_int, self.b.fcmp_ordered("!=", self.floor(half), half))
        core = self.sel(b.and_(y_odd, self.signbit(x)), self.neg(core), core)
        x_fin_neg = b.and_(self.lt(x, self.c(0.0)), self.gt(x, self.c(-math.inf)))
        core = self.sel(b.and_(x_fin_neg, b.and_(y_fin, b.not_(y_int))), self.nan(), core)
        is_one = b.or_(self.eq(y, self.c(0.0)), self.eq(x, one))
        is_one = b.or_(is_one, b.and_(self.eq(self.abs(x), one), self.eq(ay, self.inf())))
        return self.sel(is_one, one, core)

    def _log_dd_64(self, ax):
        """log(ax) for ax > 0 finite as a double-double (hi, lo), ~2^-60 relative."""
        k, f = self._log_split(ax)
        two = self.c(2.0)
        dh = self.add(two, f)
        dl = self.sub(f, self.sub(dh, two))                       # exact
        sh = self.div(f, dh)
        sl = self.div(self.sub(self.fma(self.neg(sh), dh, f), self.mul(sh, dl)), dh)
        z = self.mul(sh, sh)
        # log(1+f) = 2s + 2s^3/3 + ... = 2 s + s z R(z)  (R = _LOG_R_64 with z factor inside)
        c0_lo = 2.0 / 3.0 - _LOG_R_DD[0]                     # 2/3 = c0 + c0_lo
        rp = self.add(self.mad(z, self.poly(z, _LOG_R_DD[1:]), self.c(c0_lo)), self.c(_LOG_R_DD[0]))
        rest = self.mul(self.mul(sh, z), rp)
        ln2_hi, ln2_lo = self._ln2()
        a_h = self.mul(k, self.c(ln2_hi))                          # exact
        two_s = self.add(sh, sh)
        hi = self.add(a_h, two_s)
        # two-sum error of a_h + two_s
        bb = self.sub(hi, a_h)
        err = self.add(self.sub(a_h, self.sub(hi, bb)), self.sub(two_s, bb))
        lo = self.add(err, self.add(self.add(sl, sl), self.mad(k, self.c(ln2_lo), rest)))
        h2 = self.add(hi, lo)
        l2 = self.sub(lo, self.sub(h2, hi))
        return h2, l2

    def _pow_core_64(self, x, y):
        """|x|^y via exp(y log|x|) with a double-double log and an exp that takes the low part."""
        ax = self.abs(x)
        lh, ll = self._log_dd_64(ax)
        th = self.mul(y, lh)
        tl = self.mad(y, ll, self.fma(y, lh, self.neg(th)))
        tl = self.sel(self.lt(self.abs(th), self.c(1000.0)), tl, self.c(0.0))
        # exp(th + tl)
        lo, hi = self._exp_limits()
        m, r, cc = self._exp_reduce(th, lo, hi)
        cc = self.add(cc, tl)
        # e^(r + cc) = (1 + r) + (r^2 Q(r) + cc (1 + r)) with 1 + r as an exact two-sum, so
        # the only large rounding is the final one (representable powers come out exact).
        one = self.c(1.0)
        q = self.poly(r, _EXP_Q_64)
        sh = self.add(one, r)
        sl = self.add(self.sub(one, sh), r)
        tail = self.add(sl, self.mad(self.mul(r, r), q, self.mad(cc, r, cc)))
        res = self.scale(self.add(sh, tail), m)
        # exact path for integer exponents |y| < 128: binary powering with every product's
        # exactness checked by an FMA residual; used only when no product rounded.
        res = self._ipow_exact_64(ax, y, res)
        # specials of the core: log(0) = -inf, log(inf) = inf, NaNs
        lx = self.log(ax)              # only for the special lanes (cheap relative to the rest)
        special = self.b.or_(self.uge(ax, self.inf()), self.eq(ax, self.c(0.0)))
        special = self.b.or_(special, self.uge(self.abs(th), self.inf()))
        return self.sel(special, self.exp(self.mul(y, lx)), res)

    def _ipow_exact_64(self, ax, y, fallback):
        b = self.b
        i64 = ir.IntType(64)
        ay = self.abs(y)
        ok = b.and_(self.eq(self.floor(ay), ay), self.lt(ay, self.c(128.0)))
        n = b.fptosi(self.sel(ok, ay, self.c(0.0)), i64)
        zero = self.c(0.0)
        t = ir.Constant(ir.IntType(1), 1)
        acc, base, exact, base_exact = self.c(1.0), ax, t, t
        for i in range(7):
            bit = b.trunc(b.lshr(n, ir.Constant(i64, i)), ir.IntType(1))
            prod = self.mul(acc, base)
            ex = self.eq(self.fma(acc, base, self.neg(prod)), zero)
            acc = self.sel(bit, prod, acc)
            exact = self.sel(bit, b.and_(exact, b.and_(base_exact, ex)), exact)
            if i < 6:
                sq = self.mul(base, base)
                base_exact = b.and_(base_exact, self.eq(self.fma(base, base, self.neg(sq)), zero))
                base = sq
        rec = self.div(self.c(1.0), acc)
        rec_ok = self.eq(self.fma(acc, rec, self.c(-1.0)), zero)
        negy = self.lt(y, zero)
        val = self.sel(negy, rec, acc)
        exact = b.and_(exact, b.or_(b.not_(negy), rec_ok))
        # finite, normal results only (residual tests are meaningless for inf/0/subnormals)
        exact = b.and_(exact, self.ge(self.abs(val), self.c(2.0 ** -1022)))
        exact = b.and_(exact, self.lt(self.abs(val), self.inf()))
        return self.sel(b.and_(ok, exact), val, fallback)

    # --- sqrt / rsqrt -----------------------------------------------------------------------
    def sqrt_(self, x):
        return self.sqrt(x)

    def rsqrt(self, x):
        return self.div(self.c(1.0), self.sqrt(x))


def _ph64_table(module: ir.Module):
    """Global constant table of 64-bit pairs (T[w] << 32 | T[w+1]) of the 32-bit words of 2/pi,
    T[w] = U[w - 2] where U[i] = floor(2/pi 2^(32 i)) mod 2^32 (U[i <= 0] = 0)."""
    name = "__s4tf_mathlib_2_over_pi_pairs"
    g = module.globals.get(name)
    if g is not None:
        return g
    words = [0, 0, 0] + [_two_over_pi_word(i) for i in range(1, _TWO_OVER_PI_BITS // 32 + 1)]
    words += [0] * 8
    pairs = [(words[w] << 32) | words[w + 1] for w in range(len(words) - 1)]
    i64 = ir.IntType(64)
    arr_ty = ir.ArrayType(i64, len(pairs))
    g = ir.GlobalVariable(module, arr_ty, name=name)
    g.global_constant = True
    g.linkage = "internal"
    g.initializer = ir.Constant(arr_ty, [ir.Constant(i64, p - (1 << 64) if p >= 1 << 63 else p)
                                         for p in pairs])
    return g


_DISPATCH = {n: n for n in FUNCTIONS}
_DISPATCH["sqrt"] = "sqrt_"


def emit(builder: ir.IRBuilder, name: str, args: list) -> ir.Value:
    """Emit ``name(*args)`` for scalar float/double values; see the module docstring."""
    name = ALIASES.get(name, name)
    if name not in _DISPATCH:
        raise KeyError(f"mathlib has no function {name!r}; known: {', '.join(FUNCTIONS)}")
    want = 2 if name in BINARY else 1
    if len(args) != want:
        raise TypeError(f"{name} takes {want} argument(s), got {len(args)}")
    ty = args[0].type
    if any(a.type != ty for a in args):
        raise TypeError(f"{name}: arguments must share one type")
    m = _Math(builder, ty)
    return getattr(m, _DISPATCH[name])(*args)


# --------------------------------------------------------------------------------------------
# JIT helpers (used by the tests and by the backend's tests)
# --------------------------------------------------------------------------------------------
_LLVM_LOCK = threading.RLock()
_LLVM_READY = False
_KERNELS: dict = {}


def _llvm():
    global _LLVM_READY
    import llvmlite.binding as llvm
    with _LLVM_LOCK:
        if not _LLVM_READY:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _LLVM_READY = True
    return llvm


def create_target_machine():
    """Host-CPU target machine (cpu name + features), opt level 3: the backend's one (jit.py)."""
    _llvm()
    from . import jit
    return jit.target_machine()


def optimize_module(mod, tm=None):
    """The backend's O3 pipeline with loop + SLP vectorization (jit.optimize)."""
    from . import jit
    return jit.optimize(mod)


class _Kernel:
    """A JIT-compiled elementwise loop. Call with numpy arrays (broadcast for binary)."""

    def __init__(self, name, dtype, nargs, engine, addr, optimized_ir, asm):
        self.name, self.dtype, self.nargs = name, np.dtype(dtype), nargs
        self._engine = engine           # keeps the code alive
        ptr = ctypes.c_void_p
        self._fn = ctypes.CFUNCTYPE(None, *([ptr] * (nargs + 1)), ctypes.c_int64)(addr)
        self.optimized_ir = optimized_ir
        self.asm = asm

    def __call__(self, *xs, out=None):
        if len(xs) != self.nargs:
            raise TypeError(f"{self.name} kernel takes {self.nargs} array(s)")
        arrs = [np.asarray(x, dtype=self.dtype) for x in xs]
        if self.nargs > 1:
            arrs = np.broadcast_arrays(*arrs)
        arrs = [np.ascontiguousarray(a) for a in arrs]
        if out is None:
            out = np.empty(arrs[0].shape, dtype=self.dtype)
        elif (out.dtype != self.dtype or out.shape != arrs[0].shape
              or not out.flags.c_contiguous):
            raise ValueError("out must be a C-contiguous array of the result's shape and dtype")
        self._fn(out.ctypes.data, *[a.ctypes.data for a in arrs], out.size)
        return out


def _build_kernel(name: str, dtype, nargs: int) -> _Kernel:
    dtype = np.dtype(dtype)
    key = (ALIASES.get(name, name), dtype.str, nargs)
    k = _KERNELS.get(key)
    if k is not None:
        return k
    if dtype == np.float32:
        fty = ir.FloatType()
    elif dtype == np.float64:
        fty = ir.DoubleType()
    else:
        raise TypeError(f"mathlib kernels support float32/float64, not {dtype}")
    llvm = _llvm()
    mod = ir.Module(name=f"mathlib_{name}")
    i64 = ir.IntType(64)
    pty = ir.PointerType(fty)
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [pty] * (nargs + 1) + [i64]),
                     name="kernel")
    for a in fn.args[:-1]:
        a.add_attribute("noalias")
    entry = fn.append_basic_block("entry")
    loop = fn.append_basic_block("loop")
    done = fn.append_basic_block("done")
    b = ir.IRBuilder(entry)
    n = fn.args[-1]
    b.cbranch(b.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
    b.position_at_end(loop)
    idx = b.phi(i64)
    idx.add_incoming(ir.Constant(i64, 0), entry)
    vals = [b.load(b.gep(fn.args[1 + j], [idx], inbounds=True)) for j in range(nargs)]
    res = emit(b, name, vals)
    b.store(res, b.gep(fn.args[0], [idx], inbounds=True))
    nxt = b.add(idx, ir.Constant(i64, 1))
    idx.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()

    tm = create_target_machine()
    with _LLVM_LOCK:
        parsed = llvm.parse_assembly(str(mod))
        parsed.triple = llvm.get_process_triple()
        parsed.data_layout = str(tm.target_data)
        parsed.verify()
        optimize_module(parsed, tm)
        opt_ir = str(parsed)
        asm = tm.emit_assembly(parsed)
        engine = llvm.create_mcjit_compiler(parsed, tm)
        engine.finalize_object()
        addr = engine.get_function_address("kernel")
    k = _Kernel(name, dtype, nargs, engine, addr, opt_ir, asm)
    _KERNELS[key] = k
    return k


def build_unary_kernel(name: str, dtype) -> Callable[[np.ndarray], np.ndarray]:
    """JIT ``out[i] = name(x[i])`` for float32/float64 with the backend's O3 vectorizing
    pipeline; returns a callable (cached). ``.optimized_ir`` / ``.asm`` hold the code."""
    return _build_kernel(name, dtype, 1)


def build_binary_kernel(name: str, dtype) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Like :func:`build_unary_kernel` for ``atan2``/``pow``: ``out[i] = name(x[i], y[i])``."""
    return _build_kernel(name, dtype, 2)
