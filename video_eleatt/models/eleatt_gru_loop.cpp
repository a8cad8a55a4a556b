// The per-step loops of the fused EleAtt-GRU (video_eleatt/models/fused_gru.py), in C++.
//
// Each function is a line-for-line copy of its Python twin in fused_gru.py
// (_forward_steps_python, _backward_steps_python): the same ATen operations on the same
// buffers, in the same order, so the two compute identical results. The only thing gained is
// the Python interpreter's cost per operation (several microseconds, a dozen operations per
// step), which dominates at small sizes -- this is how nn.GRU runs its own time loop.
//
// Products: backend 0 = at::mm / at::addmm, 1 = oneDNN's mkldnn::_linear_pointwise with a
// weight packed by mkldnn::_reorder_linear_weight (called through the dispatcher, as the
// Python code calls torch.ops.mkldnn). bf16 = true casts each product's left operand to
// bfloat16 (the weights come packed in bfloat16), casts the result back to the input's
// dtype and adds the bias in that dtype: bf16 operands, float32 accumulation and
// non-linearities.
//
// Only ATen and the op registry are included (no pybind11, no torch/extension.h), which keeps
// the one-time build short. The ops are registered as torch.ops.video_eleatt_gru.*.

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <optional>
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

void forward_steps(const Tensor& x_seq, Tensor attention, Tensor hidden_all, Tensor gates,
                   const Tensor& weight_h, const Tensor& bias_hn, const Tensor& weight_ih,
                   const Tensor& bias_i, at::IntArrayRef batch_sizes, bool softmax, bool keep,
                   int64_t backend, bool bf16) {
  const Products mm(backend, bf16);
  const int64_t steps = x_seq.size(0), batch = x_seq.size(1), input_size = x_seq.size(2);
  const int64_t hidden = hidden_all.size(2);
  const std::optional<Tensor> no_bias, bias_i_opt(bias_i);
  for (int64_t t = 0; t < steps; ++t) {
    const int64_t rows = batch_sizes[t];
    const Tensor h_prev = rows_of(hidden_all.select(0, t), rows);
    const Tensor projected = mm.linear(h_prev, weight_h, no_bias);  // (b, D + 3N)
    Tensor gate = rows_of(attention.select(0, t), rows);             // (b, D)
    gate.add_(projected.narrow(1, 0, input_size));
    if (softmax) {
      gate.copy_(at::softmax(gate, 1));
    } else {
      gate.sigmoid_();
    }
    const Tensor x_mod = gate * rows_of(x_seq.select(0, t), rows);
    const Tensor gi = mm.linear(x_mod, weight_ih, bias_i_opt);  // (b, 3N)
    const Tensor gh = projected.narrow(1, input_size, 3 * hidden);
    Tensor step_gates = rows_of(gates.select(0, keep ? t : 0), rows);  // (b, 4N)
    Tensor reset_update = step_gates.narrow(1, 0, 2 * hidden);
    Tensor hidden_part = step_gates.narrow(1, 3 * hidden, hidden);
    at::add_out(reset_update, gi.narrow(1, 0, 2 * hidden), gh.narrow(1, 0, 2 * hidden));
    reset_update.sigmoid_();
    at::add_out(hidden_part, gh.narrow(1, 2 * hidden, hidden), bias_hn);
    // n in h_t's own (contiguous) rows: tanh is several times slower on a strided view.
    Tensor h_next = rows_of(hidden_all.select(0, t + 1), rows);
    at::mul_out(h_next, reset_update.narrow(1, 0, hidden), hidden_part);
    h_next.add_(gi.narrow(1, 2 * hidden, hidden)).tanh_();
    if (keep) {
      step_gates.narrow(1, 2 * hidden, hidden).copy_(h_next);
    }
    at::lerp_out(h_next, h_next, h_prev, reset_update.narrow(1, hidden, hidden));
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
                    int64_t backend, bool bf16) {
  const Products mm(backend, bf16);
  const int64_t steps = factors_i.size(0), batch = factors_i.size(1);
  const int64_t hidden = factors_i.size(3), input_size = attention.size(2);
  const std::optional<Tensor> no_bias;
  for (int64_t t = steps - 1; t >= 0; --t) {
    const int64_t rows = batch_sizes[t];
    Tensor dh = rows_of(grad_h, rows);  // (b, N)
    if (grad_out_seq.has_value()) {
      dh.add_(rows_of(grad_out_seq->select(0, t), rows));
    }
    const Tensor dh_blocks = dh.unsqueeze(1);  // (b, 1, N)
    Tensor dgi = rows_of(grad_gi.select(0, t), rows);  // (b, 3N)
    Tensor dgi_blocks = dgi.view({rows, 3, hidden});
    at::mul_out(dgi_blocks, dh_blocks, rows_of(factors_i.select(0, t), rows));
    Tensor step_projected = rows_of(grad_projected.select(0, t), rows);  // (b, D + 3N)
    Tensor dgh_blocks = step_projected.narrow(1, input_size, 3 * hidden).view({rows, 3, hidden});
    at::mul_out(dgh_blocks, dh_blocks, rows_of(factors_h.select(0, t), rows));
    const Tensor d_x_mod = mm.linear(dgi, weight_ih_t, no_bias);  // (b, D)
    if (grad_x_mod.has_value()) {
      rows_of(grad_x_mod->select(0, t), rows).copy_(d_x_mod);
    }
    Tensor d_gate_pre = step_projected.narrow(1, 0, input_size);  // (b, D)
    const Tensor factor = rows_of(gate_factor.select(0, t), rows);
    if (gate_extra.has_value()) {
      at::addcmul_out(d_gate_pre, rows_of(gate_extra->select(0, t), rows), d_x_mod, factor);
    } else {
      at::mul_out(d_gate_pre, d_x_mod, factor);
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
      "int[] batch_sizes, bool softmax, bool keep, int backend, bool bf16) -> ()");
  m.def(
      "backward_steps(Tensor(a!) grad_h, Tensor? grad_out_seq, Tensor factors_i, "
      "Tensor factors_h, Tensor gate_factor, Tensor? gate_extra, Tensor attention, "
      "Tensor update, Tensor(b!) grad_projected, Tensor(c!) grad_gi, Tensor(d!)? grad_x_mod, "
      "Tensor weight_h_t, Tensor weight_ih_t, int[] batch_sizes, bool softmax, int backend, "
      "bool bf16) -> ()");
  // CompositeExplicitAutograd: one kernel for every device (the ATen calls inside dispatch on).
  m.impl("forward_steps", c10::DispatchKey::CompositeExplicitAutograd, TORCH_FN(forward_steps));
  m.impl("backward_steps", c10::DispatchKey::CompositeExplicitAutograd, TORCH_FN(backward_steps));
}
