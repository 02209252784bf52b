// Thin pybind11 layer over fusion.cpp: validates every argument, raises ValueError/TypeError with a
// message naming the argument and the expected shape, then runs the kernel without the GIL.
// eps and threads are taken as Python objects and converted here, so a str, a bool or an int beyond C's
// range gets an EdgeFuse error naming the argument, never pybind's "incompatible function arguments".
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iomanip>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fusion.h"

namespace py = pybind11;

namespace {

constexpr int kNpyBool = 0;
constexpr int kNpyUint8 = 2;
constexpr int kNpyFloat32 = 11;
constexpr int kNpyAligned = 0x0100;  // NPY_ARRAY_ALIGNED
using edgefuse::kMaxModalities;
using edgefuse::kMaxThreads;

std::string shape_str(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s << ", ";
    s << a.shape(i);
  }
  if (a.ndim() == 1) s << ",";
  s << ")";
  return s.str();
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// Raised as edgefuse.errors.FusionInputError (a ValueError) / FusionTypeError (also a TypeError).
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct InputTypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Raised as edgefuse.errors.FusionResourceError (a RuntimeError): the input was fine, the process could
// not give the kernel what it needed (worker threads).
struct ResourceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& msg) { throw InputError(msg); }

std::string type_name(py::handle obj) {
  return py::str(py::type::of(obj).attr("__qualname__")).cast<std::string>();
}

// repr() of a value the user gave, for an error message: never raises (a hostile __repr__, an int too
// long to print) and never floods the message.
std::string safe_repr(py::handle obj) {
  std::string r;
  try {
    r = py::repr(obj).cast<std::string>();
  } catch (const py::error_already_set&) {
    r = "<unprintable>";
  }
  if (r.size() > 60) r = r.substr(0, 57) + "...";
  return r;
}

// "type repr", e.g. "str '1e-5'".
std::string describe(py::handle obj) { return type_name(obj) + " " + safe_repr(obj); }

// Shortest decimal that gives back the same float32 (e.g. 1e-40, 3e+38), for values in float range.
std::string fmt_float(float f) {
  for (int prec = 1; prec <= 9; ++prec) {
    std::ostringstream t;
    t << std::setprecision(prec) << f;
    if (std::strtof(t.str().c_str(), nullptr) == f) return t.str();
  }
  std::ostringstream t;
  t << std::setprecision(9) << f;
  return t.str();
}

bool is_bool_like(py::handle obj) {
  if (PyBool_Check(obj.ptr())) return true;
  const std::string tp = Py_TYPE(obj.ptr())->tp_name;
  return tp == "numpy.bool" || tp == "numpy.bool_";
}

// eps: a real number (float, int, NumPy scalar) whose float32 value is finite and normal, i.e. in
// [FLT_MIN, FLT_MAX]; that float32 value is the one the kernel adds to the variance.
float parse_eps(py::handle obj) {
  double v;
  if (PyFloat_CheckExact(obj.ptr())) {
    v = PyFloat_AS_DOUBLE(obj.ptr());  // the common case: no call into Python
  } else {
    const char* want = "eps must be a float > 0 (default 1e-5); got ";
    if (is_bool_like(obj) || PyUnicode_Check(obj.ptr()) || PyBytes_Check(obj.ptr()) || obj.is_none() ||
        (py::isinstance<py::array>(obj) && py::reinterpret_borrow<py::array>(obj).ndim() != 0) ||
        !PyNumber_Check(obj.ptr())) {
      std::string hint = PyUnicode_Check(obj.ptr()) ? " (convert it with float(...))" : "";
      throw InputTypeError(want + describe(obj) + hint);
    }
    v = PyFloat_AsDouble(obj.ptr());
    if (v == -1.0 && PyErr_Occurred()) {
      const bool overflow = PyErr_ExceptionMatches(PyExc_OverflowError);
      PyErr_Clear();
      if (overflow) {
        fail("eps = " + safe_repr(obj) + " is too large; eps must be in [1.1754944e-38, 3.4028235e+38]");
      }
      throw InputTypeError(want + describe(obj));
    }
  }
  if (!(std::isfinite(v) && v > 0.0)) {
    std::ostringstream s;
    s << "eps = " << v << "; eps must be finite and > 0 (default 1e-5)";
    fail(s.str());
  }
  if (v > FLT_MAX) {
    std::ostringstream s;
    s << std::setprecision(9) << v;
    fail("eps = " + s.str() + " becomes inf in float32 (the kernel computes in float32); eps must be "
         "<= 3.4028235e+38 (typical: 1e-5)");
  }
  const float f = static_cast<float>(v);
  if (!(f >= FLT_MIN)) {
    std::ostringstream s;
    s << "eps = " << std::setprecision(9) << v << " becomes "
      << (f == 0.0f ? "0" : "a denormal " + fmt_float(f))
      << " in float32 (the kernel computes in float32); eps must be >= 1.1754944e-38 (float32's "
         "smallest normal; typical: 1e-5)";
    fail(s.str());
  }
  return f;
}

// threads: an int (Python or NumPy integer, not bool) in [1, kMaxThreads].
std::string threads_range() { return "[1, " + std::to_string(kMaxThreads) + "]"; }

std::int64_t parse_threads(py::handle obj) {
  long long v;
  int overflow = 0;
  if (PyLong_CheckExact(obj.ptr())) {
    v = PyLong_AsLongLongAndOverflow(obj.ptr(), &overflow);  // the common case: no call into Python
  } else {
    if (is_bool_like(obj) || !PyIndex_Check(obj.ptr())) {
      throw InputTypeError("threads must be an int in " + threads_range() +
                           " (1 = the calling thread only); got " + describe(obj));
    }
    py::object idx = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
    if (!idx) {
      PyErr_Clear();
      throw InputTypeError("threads must be an int in " + threads_range() + "; got " + describe(obj));
    }
    v = PyLong_AsLongLongAndOverflow(idx.ptr(), &overflow);
  }
  if (v == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    overflow = 1;
  }
  if (overflow || v < 1 || v > kMaxThreads) {
    const std::string given = overflow ? safe_repr(obj) : std::to_string(v);
    fail("threads = " + given + "; threads must be an int in " + threads_range() +
         " (edgefuse._fusion.MAX_THREADS = " + std::to_string(kMaxThreads) +
         "; the rows are also split over at most B threads). Use threads=1 for small batches, up to the "
         "number of CPU cores for large ones");
  }
  return static_cast<std::int64_t>(v);
}

// Returns the argument as an ndarray or throws TypeError naming it.
py::array as_array(py::handle obj, const std::string& name, const std::string& expected) {
  if (!py::isinstance<py::array>(obj)) {
    std::string tname = type_name(obj);
    std::string hint;
    if (tname == "Tensor") hint = " (for a torch.Tensor use .detach().cpu().numpy())";
    throw InputTypeError(name + " must be a numpy.ndarray " + expected + "; got " + tname + hint);
  }
  return py::reinterpret_borrow<py::array>(obj);
}

// Native byte order: a big-endian float32 ('>f4') has the same type number but other bytes.
bool native_order(const py::array& a) {
  const std::uint16_t one = 1;
  const bool little = *reinterpret_cast<const std::uint8_t*>(&one) == 1;
  const char order = a.dtype().byteorder();
  return order == '=' || order == '|' || order == (little ? '<' : '>');
}

void require_float32(const py::array& a, const std::string& name) {
  if (a.dtype().num() != kNpyFloat32) {
    fail(name + " has dtype " + dtype_str(a) + "; expected float32 (convert with .astype(np.float32))");
  }
  if (!native_order(a)) {
    fail(name + " has dtype " + dtype_str(a) + " in non-native byte order; pass " + name +
         ".astype(np.float32) (native float32)");
  }
  // A float32 view at an odd byte offset (np.frombuffer(buf, np.float32, offset=1)) cannot be read as
  // float*; NumPy says so in the ALIGNED flag.
  if (!(a.flags() & kNpyAligned)) {
    fail(name + " is not aligned to 4 bytes (a view at an odd byte offset); pass " + name + ".copy()");
  }
}

// Rows may be strided, but the elements of one row must be contiguous.
std::int64_t row_stride_elems(const py::array& a, const std::string& name, int row_axis, int col_axis) {
  if (a.shape(row_axis) == 0) return 0;  // empty: nothing is read
  if (a.shape(col_axis) > 1 && a.strides(col_axis) != static_cast<py::ssize_t>(sizeof(float))) {
    fail(name + " is not contiguous along its last axis (strides " + std::to_string(a.strides(col_axis)) +
         " bytes); pass np.ascontiguousarray(" + name + ")");
  }
  if (a.shape(row_axis) == 1) return 0;  // one row: its stride is never used
  const py::ssize_t rs = a.strides(row_axis);
  if (rs % static_cast<py::ssize_t>(sizeof(float)) != 0) {
    fail(name + " has a row stride that is not a multiple of 4 bytes; pass np.ascontiguousarray(" + name +
         ")");
  }
  return static_cast<std::int64_t>(rs / static_cast<py::ssize_t>(sizeof(float)));
}

// None, or the validated (n,) float32 array (returned as py::object: a py::array cannot be null).
py::object vector_param(py::handle obj, const char* name, std::int64_t n, const char* what) {
  if (obj.is_none()) return py::none();
  const std::string sname(name);
  const std::string expected = "of float32 with shape (" + std::to_string(n) + ",) (" + what + ")";
  py::array a = as_array(obj, sname, expected);
  require_float32(a, sname);
  if (a.ndim() != 1 || a.shape(0) != n) {
    fail(sname + " must have shape (" + std::to_string(n) + ",) (" + what + "); got shape " + shape_str(a));
  }
  if (n > 1 && a.strides(0) != static_cast<py::ssize_t>(sizeof(float))) {
    fail(sname + " is not contiguous; pass np.ascontiguousarray(" + sname + ")");
  }
  return a;
}

// gamma/beta: every value finite, else the first bad index is named.
void require_finite(const py::array& a, const char* name) {
  const auto* data = static_cast<const float*>(a.data());
  const std::int64_t bad = edgefuse::first_nonfinite(data, static_cast<std::int64_t>(a.size()));
  if (bad >= 0) {
    std::ostringstream s;
    s << name << "[" << bad << "] = " << data[bad] << "; " << name
      << " must be finite (NaN or Inf there would reach every output row); fix the checkpoint or pass None";
    fail(s.str());
  }
}

struct Range {
  const char* lo;
  const char* hi;
};

// The bytes [lo, hi) an array can touch, for any strides (negative ones included: a[::-1] starts at its
// highest address). Conservative: the holes of a strided view count as touched.
Range byte_range(const py::array& a) {
  const char* base = static_cast<const char*>(a.data());
  py::ssize_t lo = 0, hi = 0;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (a.shape(i) == 0) return {base, base};
    const py::ssize_t span = (a.shape(i) - 1) * a.strides(i);
    (span < 0 ? lo : hi) += span;
  }
  return {base + lo, base + hi + static_cast<py::ssize_t>(a.itemsize())};
}

bool overlaps(Range x, Range y) { return x.lo < y.hi && y.lo < x.hi; }

// An array the kernel reads, with its argument name for the aliasing message.
struct Input {
  py::array arr;
  const char* name;
  std::int64_t index;  // embeddings[index], or -1
};

struct Prepared {
  edgefuse::FusionArgs args;
  std::vector<const float*> ptrs;
  std::vector<std::int64_t> strides;
  std::vector<Input> keep;  // the arrays whose data the kernel reads
  py::array_t<float> out;
  std::int64_t threads = 1;
};

// One fusion weight: finite, and 0 (= that modality is absent) or >= FLT_MIN. `where` is "[m]" or
// "[b, m]".
void check_weight(float w, const std::string& where) {
  if (!(std::isfinite(w) && w >= 0.0f)) {
    std::ostringstream s;
    s << "weights" << where << " = " << w
      << "; fusion weights must be finite and >= 0 (0 = that modality is ignored, as if absent)";
    fail(s.str());
  }
  if (w != 0.0f && w < FLT_MIN) {
    fail("weights" + where + " = " + fmt_float(w) +
         " is denormal in float32; fusion weights must be 0 or >= 1.1754944e-38 (float32's smallest "
         "normal). Only ratios matter: rescale the weights (e.g. w / w.max())");
  }
}

// The cheap test (no string built): 0, or a finite normal positive float32.
inline bool usable_weight(float w) { return (w >= FLT_MIN && w <= FLT_MAX) || w == 0.0f; }

std::string idx2(std::int64_t b, std::int64_t m) {
  return "[" + std::to_string(b) + ", " + std::to_string(m) + "]";
}

// weights: (M,) shared by every row, or (B, M) one per row; float32, every value checked (see
// check_weight) and every row's float32 sum (in the kernel's order) finite. A (B, M) array may have any
// row stride; one whose last axis is not contiguous (e.g. w.T of an (M, B) array) is copied first.
void prepare_weights(Prepared& p, py::handle weights, std::int64_t B, std::int64_t M) {
  // The messages' shapes, built only for an error (the (M,) path of a B=1 call is a few microseconds).
  auto bm = [&] { return "(B, M) = (" + std::to_string(B) + ", " + std::to_string(M) + ")"; };
  if (!py::isinstance<py::array>(weights)) {
    as_array(weights, "weights", "of float32 with shape (" + std::to_string(M) + ",) or " + bm() +
                                     " (fusion weights)");  // throws the TypeError
  }
  py::array wa = py::reinterpret_borrow<py::array>(weights);
  require_float32(wa, "weights");
  if (wa.ndim() == 1) {
    if (wa.shape(0) != M) {
      fail("weights must have shape (" + std::to_string(M) + ",) (one fusion weight per modality) or " + bm() +
           " (one per row and modality); got shape " + shape_str(wa));
    }
    if (M > 1 && wa.strides(0) != static_cast<py::ssize_t>(sizeof(float))) {
      fail("weights is not contiguous; pass np.ascontiguousarray(weights)");
    }
    const auto* w = static_cast<const float*>(wa.data());
    float total = 0.0f;  // in the kernel's order: every per-row subset sum is <= this one
    for (std::int64_t m = 0; m < M; ++m) {
      if (!usable_weight(w[m])) check_weight(w[m], "[" + std::to_string(m) + "]");
      total += w[m];
    }
    if (!std::isfinite(total)) {
      fail("weights sum to inf in float32 (largest " + fmt_float(*std::max_element(w, w + M)) +
           "); the sum of all fusion weights must be <= 3.4028235e+38. Only ratios matter: rescale all "
           "weights (e.g. w / w.sum())");
    }
    p.args.weights = w;
    p.args.weights_row_stride = 0;
    p.keep.push_back({wa, "weights", -1});
    return;
  }
  if (wa.ndim() != 2 || wa.shape(0) != B || wa.shape(1) != M) {
    fail("weights must have shape " + bm() + " (one fusion weight per row and modality) or (" +
         std::to_string(M) + ",) (one per modality); got shape " + shape_str(wa));
  }
  if (M > 1 && B > 0 && wa.strides(1) != static_cast<py::ssize_t>(sizeof(float))) {
    // The kernel reads a row's M weights contiguously: a C-contiguous copy (B * M floats).
    wa = py::module_::import("numpy").attr("ascontiguousarray")(wa).cast<py::array>();
  }
  const std::int64_t rs = row_stride_elems(wa, "weights", 0, 1);
  const auto* base = static_cast<const float*>(wa.data());
  for (std::int64_t b = 0; b < B; ++b) {
    const float* w = base + b * rs;
    float total = 0.0f;  // the kernel's order
    for (std::int64_t m = 0; m < M; ++m) {
      if (!usable_weight(w[m])) check_weight(w[m], idx2(b, m));
      total += w[m];
    }
    if (!std::isfinite(total)) {
      fail("weights[" + std::to_string(b) + ", :] sum to inf in float32 (largest " +
           fmt_float(*std::max_element(w, w + M)) + "); each row's fusion weights must sum to <= "
           "3.4028235e+38. Only ratios matter: rescale the row (e.g. w / w.sum(axis=1, keepdims=True))");
    }
  }
  p.args.weights = base;
  p.args.weights_row_stride = rs;
  p.keep.push_back({wa, "weights", -1});
}

Prepared prepare(py::handle embeddings, py::handle mask, py::handle weights, py::handle gamma,
                 py::handle beta, py::handle eps, py::handle out, py::handle threads) {
  Prepared p;
  std::int64_t B = -1, M = 0, D = -1;

  // --- embeddings -----------------------------------------------------------------------------
  if (py::isinstance<py::array>(embeddings)) {
    py::array e = py::reinterpret_borrow<py::array>(embeddings);
    if (e.ndim() != 3) {
      fail("embeddings given as one array must have shape (B, M, D); got shape " + shape_str(e) +
           " (or pass a list of M arrays of shape (B, D))");
    }
    require_float32(e, "embeddings");
    B = e.shape(0);
    M = e.shape(1);
    D = e.shape(2);
    if (M == 0) fail("embeddings has M = 0 modalities; expected shape (B, M, D) with M >= 1");
    if (M > kMaxModalities) fail("embeddings has " + std::to_string(M) + " modalities; at most 64 are supported");
    const std::int64_t rs = row_stride_elems(e, "embeddings", 0, 2);
    if (e.strides(1) % static_cast<py::ssize_t>(sizeof(float)) != 0) {
      fail("embeddings has a modality stride that is not a multiple of 4 bytes; pass np.ascontiguousarray(embeddings)");
    }
    const std::int64_t ms = e.strides(1) / static_cast<py::ssize_t>(sizeof(float));
    const float* base = static_cast<const float*>(e.data());
    for (std::int64_t m = 0; m < M; ++m) {
      p.ptrs.push_back(base + m * ms);
      p.strides.push_back(rs);
    }
    p.keep.push_back({e, "embeddings", -1});
  } else if (py::isinstance<py::sequence>(embeddings) && !py::isinstance<py::str>(embeddings)) {
    py::sequence seq = py::reinterpret_borrow<py::sequence>(embeddings);
    M = static_cast<std::int64_t>(py::len(seq));
    p.keep.reserve(static_cast<std::size_t>(M) + 4);
    if (M == 0) fail("embeddings is empty; pass a list of M >= 1 arrays of shape (B, D) (None for an absent modality)");
    if (M > kMaxModalities) fail("embeddings has " + std::to_string(M) + " modalities; at most 64 are supported");
    for (std::int64_t m = 0; m < M; ++m) {
      py::object item = seq[static_cast<py::size_t>(m)];
      const std::string name = "embeddings[" + std::to_string(m) + "]";
      if (item.is_none()) {
        p.ptrs.push_back(nullptr);
        p.strides.push_back(0);
        continue;
      }
      py::array a = as_array(item, name, "of float32 with shape (B, D), or None for an absent modality");
      require_float32(a, name);
      if (a.ndim() != 2) fail(name + " must have shape (B, D); got shape " + shape_str(a));
      if (B < 0) {
        B = a.shape(0);
        D = a.shape(1);
      } else if (a.shape(0) != B || a.shape(1) != D) {
        fail(name + " has shape " + shape_str(a) + " but the earlier modalities have shape (" + std::to_string(B) +
             ", " + std::to_string(D) + "); every modality must share B and D");
      }
      p.strides.push_back(row_stride_elems(a, name, 0, 1));
      p.ptrs.push_back(static_cast<const float*>(a.data()));
      p.keep.push_back({a, "embeddings", m});
    }
  } else {
    std::string tname = type_name(embeddings);
    throw InputTypeError("embeddings must be a list of M float32 arrays of shape (B, D) (None = absent) or one "
                         "float32 array of shape (B, M, D); got " + tname);
  }

  // --- mask ---------------------------------------------------------------------------------------
  py::array mask_arr;
  if (!mask.is_none()) {
    mask_arr = as_array(mask, "mask", "of bool or uint8 with shape (B, M)");
    const int num = mask_arr.dtype().num();
    if (num != kNpyBool && num != kNpyUint8) {
      fail("mask has dtype " + dtype_str(mask_arr) + "; expected bool or uint8 with shape (B, M)");
    }
    if (mask_arr.ndim() != 2) {
      fail("mask must have shape (B, M) = (" + (B >= 0 ? std::to_string(B) : std::string("B")) + ", " +
           std::to_string(M) + "); got shape " + shape_str(mask_arr));
    }
    if (B < 0) B = mask_arr.shape(0);  // every modality is None: the mask gives the batch size
    if (mask_arr.shape(0) != B || mask_arr.shape(1) != M) {
      fail("mask must have shape (B, M) = (" + std::to_string(B) + ", " + std::to_string(M) + "); got shape " +
           shape_str(mask_arr));
    }
    const auto* mp = static_cast<const std::uint8_t*>(mask_arr.data());
    const py::ssize_t sb = mask_arr.strides(0), sm = mask_arr.strides(1);
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t m = 0; m < M; ++m) {
        const std::uint8_t v = mp[b * sb + m * sm];
        if (v > 1) {
          fail("mask[" + std::to_string(b) + ", " + std::to_string(m) + "] = " + std::to_string(v) +
               "; a uint8 mask must hold only 0 (absent) or 1 (present)");
        }
        if (v && p.ptrs[static_cast<std::size_t>(m)] == nullptr) {
          fail("mask[" + std::to_string(b) + ", " + std::to_string(m) + "] says present but embeddings[" +
               std::to_string(m) + "] is None; pass the embeddings or set the mask to 0 there");
        }
      }
    }
    p.args.mask = mp;
    p.args.mask_stride_b = sb;
    p.args.mask_stride_m = sm;
    p.keep.push_back({mask_arr, "mask", -1});
  }
  if (B < 0) {
    fail("every entry of embeddings is None and no mask was given, so the batch size is unknown; pass a mask "
         "of shape (B, M)");
  }

  // --- parameters -----------------------------------------------------------------------------------
  if (D < 0) {
    // No modality present at all: the feature size comes from gamma or beta.
    for (py::handle h : {gamma, beta}) {
      if (!h.is_none() && py::isinstance<py::array>(h)) {
        py::array a = py::reinterpret_borrow<py::array>(h);
        if (a.ndim() == 1) {
          D = a.shape(0);
          break;
        }
      }
    }
    if (D < 0) {
      fail("every entry of embeddings is None, so the feature size D is unknown; pass gamma or beta of shape (D,)");
    }
  }
  if (!weights.is_none()) prepare_weights(p, weights, B, M);
  py::object go = vector_param(gamma, "gamma", D, "LayerNorm scale");
  py::object bo = vector_param(beta, "beta", D, "LayerNorm shift");
  if (!go.is_none()) {
    py::array ga = py::reinterpret_borrow<py::array>(go);
    require_finite(ga, "gamma");
    p.args.gamma = static_cast<const float*>(ga.data());
    p.keep.push_back({ga, "gamma", -1});
  }
  if (!bo.is_none()) {
    py::array ba = py::reinterpret_borrow<py::array>(bo);
    require_finite(ba, "beta");
    p.args.beta = static_cast<const float*>(ba.data());
    p.keep.push_back({ba, "beta", -1});
  }
  const float eps32 = parse_eps(eps);
  p.threads = parse_threads(threads);

  // --- output -------------------------------------------------------------------------------------
  if (out.is_none()) {
    try {
      p.out = py::array_t<float>({static_cast<py::ssize_t>(B), static_cast<py::ssize_t>(D)});
    } catch (py::error_already_set& e) {  // NumPy's MemoryError for a (B, D) it cannot allocate
      if (!e.matches(PyExc_MemoryError)) throw;
      throw ResourceError("cannot allocate the (" + std::to_string(B) + ", " + std::to_string(D) +
                          ") float32 output; pass a smaller batch or a preallocated out=");
    }
  } else {
    py::array o = as_array(out, "out", "of float32 with shape (B, D)");
    require_float32(o, "out");
    if (o.ndim() != 2 || o.shape(0) != B || o.shape(1) != D) {
      fail("out must have shape (B, D) = (" + std::to_string(B) + ", " + std::to_string(D) + "); got shape " +
           shape_str(o));
    }
    if (!o.writeable()) fail("out is read-only; pass a writeable array");
    if (!(o.flags() & py::array::c_style)) fail("out must be C-contiguous; pass np.empty((B, D), np.float32)");
    const Range ro = byte_range(o);
    for (const Input& k : p.keep) {
      if (overlaps(ro, byte_range(k.arr))) {
        const std::string name =
            k.index >= 0 ? std::string(k.name) + "[" + std::to_string(k.index) + "]" : std::string(k.name);
        fail("out overlaps an input array (" + name + "): the kernel would overwrite data it still reads; "
             "pass a separate output buffer, e.g. out=np.empty((B, D), np.float32)");
      }
    }
    p.out = py::reinterpret_borrow<py::array_t<float>>(o);
  }

  edgefuse::FusionArgs& a = p.args;
  a.batch = B;
  a.modalities = M;
  a.dim = D;
  a.emb = p.ptrs.data();
  a.emb_row_stride = p.strides.data();
  a.eps = eps32;
  a.out = p.out.mutable_data();
  a.out_row_stride = D;
  return p;
}

// Runs the kernel without the GIL; a worker thread that cannot start becomes FusionResourceError.
void run(const Prepared& p) {
  try {
    py::gil_scoped_release release;
    edgefuse::fuse(p.args, p.threads);
  } catch (const edgefuse::ThreadStartError& e) {
    throw ResourceError("threads = " + std::to_string(p.threads) + ": " + e.what() +
                        "; the process is out of memory for thread stacks or out of its thread quota "
                        "(ulimit -u / -v); the output was not computed (an out= buffer holds partial rows). "
                        "Retry with fewer threads (threads=1 starts none) or raise the limit");
  }
}

py::array_t<float> fuse_py(py::handle embeddings, py::handle mask, py::handle weights, py::handle gamma,
                           py::handle beta, py::handle eps, py::handle out, py::handle threads) {
  Prepared p = prepare(embeddings, mask, weights, gamma, beta, eps, out, threads);
  run(p);
  return p.out;
}

py::tuple fuse_with_counts_py(py::handle embeddings, py::handle mask, py::handle weights, py::handle gamma,
                              py::handle beta, py::handle eps, py::handle out, py::handle threads) {
  Prepared p = prepare(embeddings, mask, weights, gamma, beta, eps, out, threads);
  py::array_t<std::int32_t> counts(static_cast<py::ssize_t>(p.args.batch));
  p.args.counts = counts.mutable_data();
  run(p);
  return py::make_tuple(p.out, counts);
}

bool all_finite_py(py::handle array) {
  py::array a = as_array(array, "array", "of float32");
  if (a.dtype().num() != kNpyFloat32 || !native_order(a)) {
    fail("array has dtype " + dtype_str(a) + "; all_finite takes native float32 (use numpy.isfinite for others)");
  }
  if (!(a.flags() & py::array::c_style)) {
    fail("array must be C-contiguous; pass numpy.ascontiguousarray(array)");
  }
  const auto* data = static_cast<const float*>(a.data());
  const std::int64_t n = static_cast<std::int64_t>(a.size());
  if (n < (1 << 16)) return edgefuse::all_finite(data, n);  // releasing the GIL costs more than that
  py::gil_scoped_release release;
  return edgefuse::all_finite(data, n);
}

}  // namespace

PYBIND11_MODULE(_fusion, m) {
  // The exception classes come from the one error hierarchy (edgefuse.errors, pure Python, light).
  static py::handle input_error, type_error, resource_error;
  {
    py::module_ errors = py::module_::import("edgefuse.errors");
    input_error = py::object(errors.attr("FusionInputError")).release();
    type_error = py::object(errors.attr("FusionTypeError")).release();
    resource_error = py::hasattr(errors, "FusionResourceError")
                         ? py::object(errors.attr("FusionResourceError")).release()
                         : py::handle(PyExc_RuntimeError);
  }
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InputTypeError& e) {
      PyErr_SetString(type_error.ptr(), e.what());
    } catch (const InputError& e) {
      PyErr_SetString(input_error.ptr(), e.what());
    } catch (const ResourceError& e) {
      PyErr_SetString(resource_error.ptr(), e.what());
    }
  });

  m.doc() =
      "EdgeFuse's fused masked-fusion kernel: masked weighted mean of per-modality embeddings followed by "
      "LayerNorm, in one pass over memory, without the GIL.";

  const char* fuse_doc = R"doc(Fuse per-modality embeddings: masked weighted mean, then LayerNorm over D.

Args:
    embeddings: a list of M float32 arrays of shape (B, D), None for a modality absent from the whole
        batch (no stacking copy is made); or one float32 array of shape (B, M, D). M <= MAX_MODALITIES.
        Rows may be strided (negative strides too), elements within a row must be contiguous.
    mask: optional bool or uint8 (0/1) array of shape (B, M); True = present. None = every non-None
        modality present in every row.
    weights: optional float32 fusion weights, either (M,) (one per modality, shared by every row) or
        (B, M) (one per row and modality, e.g. from a per-row reliability gate); the same rules for both.
        Each weight is finite and either 0 or >= 1.1754944e-38 (float32's smallest normal), and the
        float32 sum of each row's weights is finite. In each row the weights are renormalised over the
        modalities present there (only ratios matter). A weight of 0 acts exactly as absent: that
        (row, modality)'s data is never read (NaN there cannot leak) and it is not counted; a row whose
        present modalities all weigh 0 is an all-absent row (see Returns). An (M,) array must be
        contiguous; a (B, M) one may have any row stride (0 and negative too), and is copied when its
        last axis is not contiguous. None = every weight 1.
    gamma, beta: optional float32 (D,) LayerNorm scale and shift, every value finite.
    eps: LayerNorm epsilon added to the biased variance: a float (or int / NumPy scalar, not bool) whose
        float32 value is finite and normal, i.e. in [1.1754944e-38, 3.4028235e+38] (1e-50 would become 0).
    out: optional C-contiguous float32 (B, D) buffer to write into; it must not overlap any input
        (embeddings, mask, weights, gamma, beta), whatever the strides of the inputs.
    threads: an int (not bool) in [1, MAX_THREADS = 1024]: threads to split the rows over (default 1 =
        the calling thread only; at most B are used).

Returns:
    float32 array (B, D). A row with no modality used (none present, or every present one weighted 0)
    fuses to the zero vector, so its output is beta (zeros without beta); use fuse_with_counts to see
    which rows those are. The data of an absent or 0-weighted (row, modality) is never read: NaN or Inf
    there cannot reach the output. From finite present
    embeddings the output is never NaN, however large they are (a row whose float32 statistics would
    overflow is recomputed in double); it is finite unless LayerNorm * gamma + beta itself exceeds
    float32's range (only with |gamma| or |beta| near 3.4e38), where it saturates to +-Inf.

Raises:
    FusionTypeError (a TypeError): an argument has the wrong Python type (not a numpy array / list, a str
        or bool eps, a float or bool threads).
    FusionInputError (a ValueError): wrong dtype, rank, shape, alignment, mismatched B or D, bad mask
        values, a weight negative, NaN, Inf or denormal (named: weights[m] or weights[b, m]), weights
        of a shape other than (M,) or (B, M), a (row of) weights summing to inf, NaN/Inf in gamma or beta, eps out of
        float32's normal range, threads out of range, out overlapping an input.
    FusionResourceError (a RuntimeError): a worker thread could not be started (out of memory for its
        stack or of the thread quota); the output was not computed (an out= buffer may hold partial
        rows) and the process keeps running.
)doc";

  m.def("fuse", &fuse_py, fuse_doc, py::arg("embeddings"), py::arg("mask") = py::none(),
        py::arg("weights") = py::none(), py::arg("gamma") = py::none(), py::arg("beta") = py::none(),
        py::arg("eps") = 1e-5, py::kw_only(), py::arg("out") = py::none(), py::arg("threads") = 1);
  m.def("fuse_with_counts", &fuse_with_counts_py,
        "Like fuse (same arguments, same validation and errors), and also return int32 counts (B,): the "
        "number of modalities used in each row, i.e. present AND with a weight > 0 (0 = a row with none "
        "used -- all absent, or every present one weighted 0 -- whose output is beta or zeros).",
        py::arg("embeddings"), py::arg("mask") = py::none(), py::arg("weights") = py::none(),
        py::arg("gamma") = py::none(), py::arg("beta") = py::none(), py::arg("eps") = 1e-5, py::kw_only(),
        py::arg("out") = py::none(), py::arg("threads") = 1);
  m.def("all_finite", &all_finite_py,
        "True when no element of a C-contiguous float32 array is NaN or +-Inf (one vectorised pass, no "
        "allocation, no warning). Raises FusionTypeError for a non-array, FusionInputError for another "
        "dtype or a non-contiguous array.",
        py::arg("array"));
  m.attr("__version__") = EDGEFUSE_VERSION;
  m.attr("NATIVE_BUILD") = edgefuse::native_build();
  m.attr("MAX_MODALITIES") = kMaxModalities;
  m.attr("MAX_THREADS") = kMaxThreads;
}
