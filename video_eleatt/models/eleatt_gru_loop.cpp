// The per-step loops of the fused EleAtt-GRU (video_eleatt/models/fused_gru.py), in C++.
//
// Each function follows its Python twin in fused_gru.py (_forward_steps_python,
// _backward_steps_python): the same buffers, products and order. What is gained is the Python
// interpreter's cost per operation (several microseconds, a dozen operations per step), which
// dominates at small sizes -- this is how nn.GRU runs its own time loop -- and, on CPU in a
// vector build, the element-wise work of a step runs as a few fused passes instead of a dozen
// ATen calls (agreeing with them to float rounding). With fuse = false, and on CUDA, the
// element-wise work is the Python twin's ATen calls, line for line.
//
// Products: backend 0 = at::mm / at::addmm, 1 = oneDNN's mkldnn::_linear_pointwise with a
// weight packed by mkldnn::_reorder_linear_weight (called through the dispatcher, as the
// Python code calls torch.ops.mkldnn). bf16 = true casts each product's left operand to
// bfloat16 (the weights come packed in bfloat16), casts the result back to the input's
// dtype and adds the bias in that dtype: bf16 operands, float32 accumulation and
// non-linearities.
//
// Only ATen, its vector types and the op registry are included (no pybind11, no
// torch/extension.h), which keeps the one-time build short. The ops are registered as
// torch.ops.video_eleatt_gru.*.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>
#include <type_traits>
#include <vector>

namespace {

using at::Tensor;

class Products {
 public:
  Products(int64_t backend, bool bf16) : onednn_(backend == 1), bf16_(bf16) {
    if (onednn_) {
      linear_op_.emplace(
          c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_linear_pointwise", ""));
    }
  }

  // x @ weight^T (+ bias): weight is (out, in), or oneDNN's packed form of it.
  Tensor linear(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias) const {
    const bool bias_inside = bias.has_value() && !bf16_;
    const Tensor operand = bf16_ ? x.to(at::kBFloat16) : x;
    Tensor result;
    if (onednn_) {
      std::vector<c10::IValue> stack;
      stack.reserve(6);
      stack.emplace_back(operand);
      stack.emplace_back(weight);
      stack.emplace_back(bias_inside ? c10::IValue(*bias) : c10::IValue());
      stack.emplace_back(std::string("none"));
      stack.emplace_back(c10::List<std::optional<at::Scalar>>());
      stack.emplace_back(std::string(""));
      linear_op_->callBoxed(&stack);
      result = stack[0].toTensor();
    } else if (bias_inside) {
      result = at::addmm(*bias, operand, weight.t());
    } else {
      result = at::mm(operand, weight.t());
    }
    if (bf16_) {
      result = result.to(x.scalar_type());
      if (bias.has_value()) {
        result.add_(*bias);
      }
    }
    return result;
  }

 private:
  bool onednn_;
  bool bf16_;
  std::optional<c10::OperatorHandle> linear_op_;
};

Tensor rows_of(const Tensor& tensor, int64_t rows) { return tensor.narrow(0, 0, rows); }

// ---- Element-wise work of a step, fused into one pass (CPU) ----------------------------------
//
// On CPU the element-wise operations of a step run as one pass over each row instead of a
// dozen ATen calls (each with its own dispatch and its own trip through memory). They use
// ATen's Vectorized<T>, the same vector maths as torch's own kernels (Sleef exp and tanh);
// gru_loop.py compiles this file with the CPU's vector instructions where torch has them.
// Results agree with the ATen path to float rounding, not bit for bit.

// A (rows, width) view whose rows are `stride` apart and whose elements are adjacent.
template <typename T>
struct RowView {
  T* data;
  int64_t stride;
  T* row(int64_t r) const { return data + r * stride; }
};

bool row_major(const Tensor& t) { return t.dim() == 2 && (t.size(1) <= 1 || t.stride(1) == 1); }

template <typename T>
RowView<T> view_of(const Tensor& t) {
  return {t.data_ptr<std::remove_const_t<T>>(), t.stride(0)};
}

template <typename T>
inline at::vec::Vectorized<T> vec_sigmoid(const at::vec::Vectorized<T>& v) {
  const at::vec::Vectorized<T> one(T(1));
  return one / (one + v.neg().exp());
}

// body(r) for r in [0, rows), over torch's threads when there is enough work (ATen's grain for
// element-wise kernels: 32768 elements).
template <typename F>
void for_rows(int64_t rows, int64_t width, const F& body) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(width, 1));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      body(r);
    }
  });
}

// Forward, sigmoid gate: a = sigmoid(pre + proj) over pre; x_mod = a * x.
template <typename T>
void gate_forward(RowView<T> pre, RowView<const T> proj, RowView<const T> x, RowView<T> x_mod,
                  int64_t rows, int64_t width) {
  using Vec = at::vec::Vectorized<T>;
  for_rows(rows, width, [&](int64_t r) {
    T* p = pre.row(r);
    const T* q = proj.row(r);
    const T* xr = x.row(r);
    T* m = x_mod.row(r);
    for (int64_t i = 0; i < width; i += Vec::size()) {
      const int64_t n = std::min<int64_t>(Vec::size(), width - i);
      const Vec a = vec_sigmoid(Vec::loadu(p + i, n) + Vec::loadu(q + i, n));
      a.store(p + i, n);
      (a * Vec::loadu(xr + i, n)).store(m + i, n);
    }
  });
}

// Forward GRU update (nn.GRU's convention) from gi = W_i x~ + b_i (b_hr, b_hz folded in) and
// gh = W_h h (no bias): r, z = sigmoid(gi + gh), q = gh_n + b_hn, n = tanh(gi_n + r * q),
// h_t = n + z * (h_{t-1} - n). gates (r, z, n, q per row) may be null (inference).
template <typename T>
void cell_forward(RowView<const T> gi, RowView<const T> gh, const T* bias_hn,
                  RowView<const T> h_prev, RowView<T> h_next, std::optional<RowView<T>> gates,
                  int64_t rows, int64_t hidden) {
  using Vec = at::vec::Vectorized<T>;
  for_rows(rows, 4 * hidden, [&](int64_t r) {
    const T* i_row = gi.row(r);
    const T* h_row = gh.row(r);
    const T* prev = h_prev.row(r);
    T* next = h_next.row(r);
    T* g = gates.has_value() ? gates->row(r) : nullptr;
    for (int64_t j = 0; j < hidden; j += Vec::size()) {
      const int64_t n = std::min<int64_t>(Vec::size(), hidden - j);
      const Vec reset = vec_sigmoid(Vec::loadu(i_row + j, n) + Vec::loadu(h_row + j, n));
      const Vec update = vec_sigmoid(Vec::loadu(i_row + hidden + j, n) +
                                     Vec::loadu(h_row + hidden + j, n));
      const Vec hidden_part = Vec::loadu(h_row + 2 * hidden + j, n) + Vec::loadu(bias_hn + j, n);
      const Vec candidate = (Vec::loadu(i_row + 2 * hidden + j, n) + reset * hidden_part).tanh();
      const Vec h = Vec::loadu(prev + j, n);
      (candidate + update * (h - candidate)).store(next + j, n);
      if (g != nullptr) {
        reset.store(g + j, n);
        update.store(g + hidden + j, n);
        candidate.store(g + 2 * hidden + j, n);
        hidden_part.store(g + 3 * hidden + j, n);
      }
    }
  });
}

// Backward, per step: dh += grad_out (if given); dG_i = dh * factors_i, dG_h = dh * factors_h
// for the three blocks r, z, n.
template <typename T>
void step_grads(RowView<T> dh, std::optional<RowView<const T>> grad_out,
                RowView<const T> factors_i, RowView<const T> factors_h, RowView<T> dgi,
                RowView<T> dgh, int64_t rows, int64_t hidden) {
  using Vec = at::vec::Vectorized<T>;
  for_rows(rows, 7 * hidden, [&](int64_t r) {
    T* d_row = dh.row(r);
    const T* out_row = grad_out.has_value() ? grad_out->row(r) : nullptr;
    for (int64_t j = 0; j < hidden; j += Vec::size()) {
      const int64_t n = std::min<int64_t>(Vec::size(), hidden - j);
      Vec d = Vec::loadu(d_row + j, n);
      if (out_row != nullptr) {
        d = d + Vec::loadu(out_row + j, n);
        d.store(d_row + j, n);
      }
      for (int64_t k = 0; k < 3; ++k) {
        const int64_t offset = k * hidden + j;
        (d * Vec::loadu(factors_i.row(r) + offset, n)).store(dgi.row(r) + offset, n);
        (d * Vec::loadu(factors_h.row(r) + offset, n)).store(dgh.row(r) + offset, n);
      }
    }
  });
}

// Backward through the gate: da_pre = dx~ * factor (+ extra); grad_x_mod = dx~ (if given).
template <typename T>
void gate_backward(RowView<const T> d_x_mod, RowView<const T> factor,
                   std::optional<RowView<const T>> extra, RowView<T> d_gate_pre,
                   std::optional<RowView<T>> grad_x_mod, int64_t rows, int64_t width) {
  using Vec = at::vec::Vectorized<T>;
  for_rows(rows, width, [&](int64_t r) {
    const T* dx = d_x_mod.row(r);
    const T* f = factor.row(r);
    const T* e = extra.has_value() ? extra->row(r) : nullptr;
    T* out = d_gate_pre.row(r);
    T* keep = grad_x_mod.has_value() ? grad_x_mod->row(r) : nullptr;
    for (int64_t i = 0; i < width; i += Vec::size()) {
      const int64_t n = std::min<int64_t>(Vec::size(), width - i);
      const Vec d = Vec::loadu(dx + i, n);
      Vec result = d * Vec::loadu(f + i, n);
      if (e != nullptr) {
        result = result + Vec::loadu(e + i, n);
      }
      result.store(out + i, n);
      if (keep != nullptr) {
        d.store(keep + i, n);
      }
    }
  });
}

template <typename T>
std::optional<RowView<T>> optional_view(const std::optional<Tensor>& t) {
  if (!t.has_value()) {
    return std::nullopt;
  }
  return view_of<T>(*t);
}

bool all_row_major(std::initializer_list<std::optional<Tensor>> tensors) {
  return std::all_of(tensors.begin(), tensors.end(), [](const std::optional<Tensor>& t) {
    return !t.has_value() || row_major(*t);
  });
}

// Built with the CPU's vector instructions (gru_loop.py passes them where torch's CPU
// capability has AVX2)? Without them Vectorized<T> is plain scalar code, slower than ATen's
// own kernels, so the fused passes are used only in a vector build.
#if defined(CPU_CAPABILITY_AVX2)
constexpr bool kVectorBuild = true;
#else
constexpr bool kVectorBuild = false;
#endif

// The fused passes take CPU float32/float64 only; elsewhere (CUDA) the ATen calls run.
bool fusable(const Tensor& t) {
  return kVectorBuild && t.device().is_cpu() &&
         (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble);
}

void forward_steps(const Tensor& x_seq, Tensor attention, Tensor hidden_all, Tensor gates,
                   const Tensor& weight_h, const Tensor& bias_hn, const Tensor& weight_ih,
                   const Tensor& bias_i, at::IntArrayRef batch_sizes, bool softmax, bool keep,
                   int64_t backend, bool bf16, bool fuse) {
  const Products mm(backend, bf16);
  const int64_t steps = x_seq.size(0), batch = x_seq.size(1), input_size = x_seq.size(2);
  const int64_t hidden = hidden_all.size(2);
  const std::optional<Tensor> no_bias, bias_i_opt(bias_i);
  const bool fused = fuse && fusable(x_seq) && bias_hn.is_contiguous();
  const bool fused_gate = fused && !softmax;
  for (int64_t t = 0; t < steps; ++t) {
    const int64_t rows = batch_sizes[t];
    const Tensor h_prev = rows_of(hidden_all.select(0, t), rows);
    const Tensor projected = mm.linear(h_prev, weight_h, no_bias);  // (b, D + 3N)
    Tensor gate = rows_of(attention.select(0, t), rows);             // (b, D)
    const Tensor x_step = rows_of(x_seq.select(0, t), rows);
    Tensor x_mod;
    if (fused_gate && all_row_major({gate, projected, x_step})) {
      x_mod = at::empty_like(x_step);
      AT_DISPATCH_FLOATING_TYPES(gate.scalar_type(), "eleatt_gate_forward", [&] {
        gate_forward<scalar_t>(view_of<scalar_t>(gate), view_of<const scalar_t>(projected),
                               view_of<const scalar_t>(x_step), view_of<scalar_t>(x_mod), rows,
                               input_size);
      });
    } else {
      gate.add_(projected.narrow(1, 0, input_size));
      if (softmax) {
        gate.copy_(at::softmax(gate, 1));
      } else {
        gate.sigmoid_();
      }
      x_mod = gate * x_step;
    }
    const Tensor gi = mm.linear(x_mod, weight_ih, bias_i_opt);  // (b, 3N)
    const Tensor gh = projected.narrow(1, input_size, 3 * hidden);
    Tensor step_gates = rows_of(gates.select(0, keep ? t : 0), rows);  // (b, 4N)
    Tensor h_next = rows_of(hidden_all.select(0, t + 1), rows);
    if (fused && all_row_major({gi, gh, h_prev, h_next, step_gates})) {
      AT_DISPATCH_FLOATING_TYPES(gi.scalar_type(), "eleatt_cell_forward", [&] {
        std::optional<RowView<scalar_t>> kept;
        if (keep) {
          kept = view_of<scalar_t>(step_gates);
        }
        cell_forward<scalar_t>(view_of<const scalar_t>(gi), view_of<const scalar_t>(gh),
                               bias_hn.data_ptr<scalar_t>(), view_of<const scalar_t>(h_prev),
                               view_of<scalar_t>(h_next), kept, rows, hidden);
      });
    } else {
      Tensor reset_update = step_gates.narrow(1, 0, 2 * hidden);
      Tensor hidden_part = step_gates.narrow(1, 3 * hidden, hidden);
      at::add_out(reset_update, gi.narrow(1, 0, 2 * hidden), gh.narrow(1, 0, 2 * hidden));
      reset_update.sigmoid_();
      at::add_out(hidden_part, gh.narrow(1, 2 * hidden, hidden), bias_hn);
      // n in h_t's own (contiguous) rows: tanh is several times slower on a strided view.
      at::mul_out(h_next, reset_update.narrow(1, 0, hidden), hidden_part);
      h_next.add_(gi.narrow(1, 2 * hidden, hidden)).tanh_();
      if (keep) {
        step_gates.narrow(1, 2 * hidden, hidden).copy_(h_next);
      }
      at::lerp_out(h_next, h_next, h_prev, reset_update.narrow(1, hidden, hidden));
    }
    if (rows < batch) {
      attention.select(0, t).narrow(0, rows, batch - rows).zero_();
      hidden_all.select(0, t + 1).narrow(0, rows, batch - rows).zero_();
      gates.select(0, keep ? t : 0).narrow(0, rows, batch - rows).zero_();
    }
  }
}

void backward_steps(Tensor grad_h, const std::optional<Tensor>& grad_out_seq,
                    const Tensor& factors_i, const Tensor& factors_h, const Tensor& gate_factor,
                    const std::optional<Tensor>& gate_extra, const Tensor& attention,
                    const Tensor& update, Tensor grad_projected, Tensor grad_gi,
                    const std::optional<Tensor>& grad_x_mod, const Tensor& weight_h_t,
                    const Tensor& weight_ih_t, at::IntArrayRef batch_sizes, bool softmax,
                    int64_t backend, bool bf16, bool fuse) {
  const Products mm(backend, bf16);
  const int64_t steps = factors_i.size(0), batch = factors_i.size(1);
  const int64_t hidden = factors_i.size(3), input_size = attention.size(2);
  const std::optional<Tensor> no_bias;
  const bool fused = fuse && fusable(grad_h);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const int64_t rows = batch_sizes[t];
    Tensor dh = rows_of(grad_h, rows);  // (b, N)
    std::optional<Tensor> grad_out;
    if (grad_out_seq.has_value()) {
      grad_out = rows_of(grad_out_seq->select(0, t), rows);
    }
    Tensor dgi = rows_of(grad_gi.select(0, t), rows);  // (b, 3N)
    Tensor step_projected = rows_of(grad_projected.select(0, t), rows);  // (b, D + 3N)
    Tensor dgh = step_projected.narrow(1, input_size, 3 * hidden);
    const Tensor step_factors_i = rows_of(factors_i.select(0, t), rows).view({rows, 3 * hidden});
    const Tensor step_factors_h = rows_of(factors_h.select(0, t), rows).view({rows, 3 * hidden});
    if (fused && all_row_major({dh, grad_out, step_factors_i, step_factors_h, dgi, dgh})) {
      AT_DISPATCH_FLOATING_TYPES(dh.scalar_type(), "eleatt_step_grads", [&] {
        step_grads<scalar_t>(view_of<scalar_t>(dh), optional_view<const scalar_t>(grad_out),
                             view_of<const scalar_t>(step_factors_i),
                             view_of<const scalar_t>(step_factors_h), view_of<scalar_t>(dgi),
                             view_of<scalar_t>(dgh), rows, hidden);
      });
    } else {
      if (grad_out.has_value()) {
        dh.add_(*grad_out);
      }
      const Tensor dh_blocks = dh.unsqueeze(1);  // (b, 1, N)
      Tensor dgi_blocks = dgi.view({rows, 3, hidden});
      at::mul_out(dgi_blocks, dh_blocks, step_factors_i.view({rows, 3, hidden}));
      Tensor dgh_blocks = dgh.view({rows, 3, hidden});
      at::mul_out(dgh_blocks, dh_blocks, step_factors_h.view({rows, 3, hidden}));
    }
    const Tensor d_x_mod = mm.linear(dgi, weight_ih_t, no_bias);  // (b, D)
    std::optional<Tensor> kept_x_mod, extra;
    if (grad_x_mod.has_value()) {
      kept_x_mod = rows_of(grad_x_mod->select(0, t), rows);
    }
    if (gate_extra.has_value()) {
      extra = rows_of(gate_extra->select(0, t), rows);
    }
    Tensor d_gate_pre = step_projected.narrow(1, 0, input_size);  // (b, D)
    const Tensor factor = rows_of(gate_factor.select(0, t), rows);
    if (fused && all_row_major({d_x_mod, factor, extra, d_gate_pre, kept_x_mod})) {
      AT_DISPATCH_FLOATING_TYPES(d_x_mod.scalar_type(), "eleatt_gate_backward", [&] {
        gate_backward<scalar_t>(view_of<const scalar_t>(d_x_mod), view_of<const scalar_t>(factor),
                                optional_view<const scalar_t>(extra), view_of<scalar_t>(d_gate_pre),
                                optional_view<scalar_t>(kept_x_mod), rows, input_size);
      });
    } else {
      if (kept_x_mod.has_value()) {
        kept_x_mod->copy_(d_x_mod);
      }
      if (extra.has_value()) {
        at::addcmul_out(d_gate_pre, *extra, d_x_mod, factor);
      } else {
        at::mul_out(d_gate_pre, d_x_mod, factor);
      }
    }
    if (softmax) {
      const Tensor total = d_gate_pre.sum(1, true);  // (b, 1)
      d_gate_pre.addcmul_(rows_of(attention.select(0, t), rows), total, -1);
    }
    // dh_{t-1} = dh * z + [da_pre, dG_h] [W_ha; W_hh]
    const Tensor d_h_prev = mm.linear(step_projected, weight_h_t, no_bias);  // (b, N)
    at::addcmul_out(dh, d_h_prev, dh, rows_of(update.select(0, t), rows));
    if (rows < batch) {
      grad_projected.select(0, t).narrow(0, rows, batch - rows).zero_();
      grad_gi.select(0, t).narrow(0, rows, batch - rows).zero_();
      if (grad_x_mod.has_value()) {
        grad_x_mod->select(0, t).narrow(0, rows, batch - rows).zero_();
      }
    }
  }
}

}  // namespace

TORCH_LIBRARY(video_eleatt_gru, m) {
  m.def(
      "forward_steps(Tensor x_seq, Tensor(a!) attention, Tensor(b!) hidden_all, "
      "Tensor(c!) gates, Tensor weight_h, Tensor bias_hn, Tensor weight_ih, Tensor bias_i, "
      "int[] batch_sizes, bool softmax, bool keep, int backend, bool bf16, bool fuse) -> ()");
  m.def(
      "backward_steps(Tensor(a!) grad_h, Tensor? grad_out_seq, Tensor factors_i, "
      "Tensor factors_h, Tensor gate_factor, Tensor? gate_extra, Tensor attention, "
      "Tensor update, Tensor(b!) grad_projected, Tensor(c!) grad_gi, Tensor(d!)? grad_x_mod, "
      "Tensor weight_h_t, Tensor weight_ih_t, int[] batch_sizes, bool softmax, int backend, "
      "bool bf16, bool fuse) -> ()");
  // CompositeExplicitAutograd: one kernel for every device (the ATen calls inside dispatch on).
  m.impl("forward_steps", c10::DispatchKey::CompositeExplicitAutograd, TORCH_FN(forward_steps));
  m.impl("backward_steps", c10::DispatchKey::CompositeExplicitAutograd, TORCH_FN(backward_steps));
}
