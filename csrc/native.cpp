// s4tf_py._native: C++ (pybind11) helpers for hot paths.
//
//   version()              the extension's version string
//   fnv1a_64(data, seed)   64-bit FNV-1a of a bytes-like object
//   encode_key(obj, default=None)   canonical bytes of a nested key (see below)
//   hash_key(obj, default=None)     fnv1a_64(encode_key(obj)) without building the bytes
//   KernelRun(run_steps, steps, count, slots)   a run of LLVM kernels, called with arrays
//
// hash_key is stable across processes, Python versions and machines (unlike hash(), which
// salts strings), so it can name on-disk cache entries. The encoding of a value is a tag byte
// followed by a payload; every integer in a payload is 8 bytes little-endian:
//
//   None 'N' | True 'T' | False 'F'
//   int (or any object with __index__) fitting int64: 'i' + value
//   larger int: 'I' + length + decimal digits (ASCII, with '-' when negative)
//   float: 'f' + IEEE-754 binary64 bits (so 0.0 and -0.0 differ, as constants should)
//   str: 's' + length + UTF-8 bytes | bytes/bytearray: 'b' + length + bytes
//   tuple: '(' + count + items | list: '[' + count + items
//   anything else: 'o' + encoding of default(obj) (TypeError when default is None)
//
// The pure-Python reference of this encoding is in tests/test_runtime.py.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

constexpr uint64_t kFnvOffset = 14695981039346656037ULL;
constexpr uint64_t kFnvPrime = 1099511628211ULL;
constexpr int kMaxDepth = 512;

inline uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= kFnvPrime;
  }
  return h;
}

// A sink receives the encoded bytes: either hashes them or appends them to a string.
struct HashSink {
  uint64_t h = kFnvOffset;
  void put(const void *p, size_t n) { h = fnv1a(h, static_cast<const unsigned char *>(p), n); }
  void tag(char c) {
    h ^= static_cast<unsigned char>(c);
    h *= kFnvPrime;
  }
};

struct BytesSink {
  std::string out;
  void put(const void *p, size_t n) { out.append(static_cast<const char *>(p), n); }
  void tag(char c) { out.push_back(c); }
};

template <class Sink>
inline void put_u64(Sink &s, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  s.put(b, 8);
}

[[noreturn]] void throw_python() { throw py::error_already_set(); }

template <class Sink>
void encode(Sink &s, PyObject *o, PyObject *dflt, int depth) {
  if (depth > kMaxDepth) throw py::value_error("hash_key: key nested more than 512 levels deep");
  if (o == Py_None) {
    s.tag('N');
    return;
  }
  if (o == Py_True) {
    s.tag('T');
    return;
  }
  if (o == Py_False) {
    s.tag('F');
    return;
  }
  if (PyTuple_Check(o) || PyList_Check(o)) {
    bool tuple = PyTuple_Check(o);
    Py_ssize_t n = tuple ? PyTuple_GET_SIZE(o) : PyList_GET_SIZE(o);
    s.tag(tuple ? '(' : '[');
    put_u64(s, static_cast<uint64_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) {
      // a list may change while default() runs Python code: re-read its size each time
      if (!tuple && i >= PyList_GET_SIZE(o)) throw py::value_error("hash_key: list changed size");
      PyObject *item = tuple ? PyTuple_GET_ITEM(o, i) : PyList_GET_ITEM(o, i);
      Py_INCREF(item);
      try {
        encode(s, item, dflt, depth + 1);
      } catch (...) {
        Py_DECREF(item);
        throw;
      }
      Py_DECREF(item);
    }
    return;
  }
  if (PyUnicode_Check(o)) {
    Py_ssize_t n = 0;
    const char *p = PyUnicode_AsUTF8AndSize(o, &n);
    if (p == nullptr) throw_python();
    s.tag('s');
    put_u64(s, static_cast<uint64_t>(n));
    s.put(p, static_cast<size_t>(n));
    return;
  }
  if (PyFloat_Check(o)) {
    double d = PyFloat_AS_DOUBLE(o);
    uint64_t bits;
    std::memcpy(&bits, &d, 8);
    s.tag('f');
    put_u64(s, bits);
    return;
  }
  if (PyLong_Check(o) || (!PyBool_Check(o) && PyIndex_Check(o))) {
    PyObject *num = PyNumber_Index(o);
    if (num == nullptr) throw_python();
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(num, &overflow);
    if (v == -1 && PyErr_Occurred()) {
      Py_DECREF(num);
      throw_python();
    }
    if (overflow == 0) {
      Py_DECREF(num);
      s.tag('i');
      put_u64(s, static_cast<uint64_t>(v));
      return;
    }
    PyObject *str = PyObject_Str(num);
    Py_DECREF(num);
    if (str == nullptr) throw_python();
    Py_ssize_t n = 0;
    const char *p = PyUnicode_AsUTF8AndSize(str, &n);
    if (p == nullptr) {
      Py_DECREF(str);
      throw_python();
    }
    s.tag('I');
    put_u64(s, static_cast<uint64_t>(n));
    s.put(p, static_cast<size_t>(n));
    Py_DECREF(str);
    return;
  }
  if (PyBytes_Check(o) || PyByteArray_Check(o)) {
    char *p;
    Py_ssize_t n;
    if (PyBytes_Check(o)) {
      p = PyBytes_AS_STRING(o);
      n = PyBytes_GET_SIZE(o);
    } else {
      p = PyByteArray_AS_STRING(o);
      n = PyByteArray_GET_SIZE(o);
    }
    s.tag('b');
    put_u64(s, static_cast<uint64_t>(n));
    s.put(p, static_cast<size_t>(n));
    return;
  }
  if (dflt == nullptr || dflt == Py_None) {
    PyErr_Format(PyExc_TypeError,
                 "hash_key: cannot encode a %.200s (keys hold None, bool, int, float, str, "
                 "bytes, tuples and lists; pass default= to map other objects)",
                 Py_TYPE(o)->tp_name);
    throw_python();
  }
  PyObject *r = PyObject_CallOneArg(dflt, o);
  if (r == nullptr) throw_python();
  if (r == o) {
    Py_DECREF(r);
    PyErr_Format(PyExc_TypeError, "hash_key: default() returned its %.200s argument unchanged",
                 Py_TYPE(o)->tp_name);
    throw_python();
  }
  s.tag('o');
  try {
    encode(s, r, dflt, depth + 1);
  } catch (...) {
    Py_DECREF(r);
    throw;
  }
  Py_DECREF(r);
}

// ---- KernelRun ------------------------------------------------------------------------------
//
// The LLVM backend's driver (s4tf_py/backends/llvm/executable.py) runs each run of kernels
// between two host steps as one call: the arrays the run reads are passed in, their data
// pointers go into the kernels' buffer tables (every slot that argument fills), and the
// runtime's s4tf_run_steps runs the kernels with the GIL released. Filling the tables from
// Python (ffi.from_buffer per slot) cost ~0.4 us a slot, ~0.1 ms of a Gemma decode step.

// The leading fields of numpy's PyArrayObject (numpy's stable ABI, which pybind11's numpy
// support reads the same way): no numpy headers are needed to build this file.
struct NpyArrayHead {
  PyObject_HEAD
  char *data;
  int nd;
  Py_ssize_t *dimensions;
  Py_ssize_t *strides;
  PyObject *base;
  PyObject *descr;
  int flags;
};
constexpr int kNpyCContiguous = 0x0001;

using RunSteps = void (*)(const void *steps, int64_t count);

class KernelRun {
 public:
  KernelRun(uintptr_t run_steps, uintptr_t steps, int64_t count,
            std::vector<std::vector<uintptr_t>> slots)
      : run_steps_(reinterpret_cast<RunSteps>(run_steps)),
        steps_(reinterpret_cast<const void *>(steps)), count_(count) {
    for (auto &arg : slots) {
      std::vector<void **> s;
      for (uintptr_t a : arg) s.push_back(reinterpret_cast<void **>(a));
      slots_.push_back(std::move(s));
    }
    py::module_ np = py::module_::import("numpy");
    ndarray_ = np.attr("ndarray");
    contiguous_ = np.attr("ascontiguousarray");
  }

  // arrays: one per argument slot list; a non-contiguous one (or a non-array) is copied into
  // a C-contiguous array that lives until the kernels are done
  void operator()(py::args arrays) {
    if (arrays.size() != slots_.size())
      throw py::type_error("KernelRun: expected " + std::to_string(slots_.size()) +
                           " arrays, got " + std::to_string(arrays.size()));
    std::vector<py::object> keep;
    PyTypeObject *nd = reinterpret_cast<PyTypeObject *>(ndarray_.ptr());
    for (size_t k = 0; k < slots_.size(); ++k) {
      PyObject *o = PyTuple_GET_ITEM(arrays.ptr(), static_cast<Py_ssize_t>(k));
      if (!(PyObject_TypeCheck(o, nd) &&
            (reinterpret_cast<NpyArrayHead *>(o)->flags & kNpyCContiguous))) {
        keep.push_back(contiguous_(py::handle(o)));
        o = keep.back().ptr();
        if (!PyObject_TypeCheck(o, nd)) throw py::type_error("KernelRun: not an array");
      }
      void *data = reinterpret_cast<NpyArrayHead *>(o)->data;
      for (void **slot : slots_[k]) *slot = data;
    }
    py::gil_scoped_release nogil;
    run_steps_(steps_, count_);
  }

 private:
  RunSteps run_steps_;
  const void *steps_;
  int64_t count_;
  std::vector<std::vector<void **>> slots_;
  py::object ndarray_, contiguous_;
};

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "s4tf_py's C++ helpers: stable hashing of cache keys (see csrc/native.cpp).";
  m.attr("FNV_OFFSET") = py::int_(kFnvOffset);
  m.attr("FNV_PRIME") = py::int_(kFnvPrime);

  m.def("version", []() { return std::string(S4TF_NATIVE_VERSION); },
        "The version of the s4tf_py._native extension.");

  m.def(
      "fnv1a_64",
      [](py::handle data, uint64_t seed) -> uint64_t {
        PyObject *o = data.ptr();
        if (PyBytes_Check(o))   // the common case, without the buffer protocol's overhead
          return fnv1a(seed, reinterpret_cast<const unsigned char *>(PyBytes_AS_STRING(o)),
                       static_cast<size_t>(PyBytes_GET_SIZE(o)));
        if (!PyObject_CheckBuffer(o) || PyUnicode_Check(o))
          throw py::type_error(std::string("fnv1a_64: expected a bytes-like object, got ") +
                               Py_TYPE(o)->tp_name);
        Py_buffer view;
        if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) != 0) throw_python();
        uint64_t h;
        {
          py::gil_scoped_release nogil;
          h = fnv1a(seed, static_cast<const unsigned char *>(view.buf),
                    static_cast<size_t>(view.len));
        }
        PyBuffer_Release(&view);
        return h;
      },
      py::arg("data"), py::arg("seed") = kFnvOffset,
      "64-bit FNV-1a hash of a bytes-like object (C-contiguous buffers), as an unsigned int.");

  m.def(
      "hash_key",
      [](py::handle key, py::handle dflt) -> uint64_t {
        HashSink s;
        encode(s, key.ptr(), dflt.ptr(), 0);
        return s.h;
      },
      py::arg("key"), py::arg("default") = py::none(),
      "Stable 64-bit hash of a nested key of None/bool/int/float/str/bytes/tuple/list:\n"
      "fnv1a_64(encode_key(key, default)). ``default(obj)`` maps any other object to an\n"
      "encodable value (e.g. ``lambda p: p.name`` for primitives).");

  m.def(
      "encode_key",
      [](py::handle key, py::handle dflt) -> py::bytes {
        BytesSink s;
        encode(s, key.ptr(), dflt.ptr(), 0);
        return py::bytes(s.out);
      },
      py::arg("key"), py::arg("default") = py::none(),
      "The canonical byte encoding that hash_key hashes (see csrc/native.cpp).");

  py::class_<KernelRun>(m, "KernelRun",
                        "A run of compiled kernels: ``run(*arrays)`` writes each array's data "
                        "pointer into its buffer-table slots, then calls\n"
                        "``s4tf_run_steps(steps, count)`` with the GIL released.")
      .def(py::init<uintptr_t, uintptr_t, int64_t, std::vector<std::vector<uintptr_t>>>(),
           py::arg("run_steps"), py::arg("steps"), py::arg("count"), py::arg("slots"))
      .def("__call__", &KernelRun::operator());
}
