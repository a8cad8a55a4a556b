"""Per-step outputs: a stream stepped with carried state gets the whole sequence's running
scores, checked against the float64 reference equations (tests/eleatt_reference.py)."""

from __future__ import annotations

import pytest
import torch
from eleatt_reference import assert_close, reference_eleatt_gru, reference_plain_gru

from video_eleatt.models.classifier import ClassifierConfig, SequenceClassifier

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# (num_eleatt_layers, num_plain_layers): plain GRU, EleAtt-GRU, and stacks of both.
STACKS = [(0, 1), (1, 0), (2, 0), (0, 2), (1, 2)]
EXTRA = ("weight_xa", "weight_ha", "bias_a")


def layer_params(model: SequenceClassifier) -> list[dict[str, torch.Tensor]]:
    """Each layer's parameters under the reference's names."""
    stack = model.stack
    params = [{k: v.detach() for k, v in layer.named_parameters()} for layer in stack.eleatt_layers]
    for k in range(stack.num_plain_layers):
        params.append(
            {
                name: getattr(stack.plain, f"{name}_l{k}").detach()
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            }
        )
    return params


def reference_running_scores(model: SequenceClassifier, x: torch.Tensor) -> torch.Tensor:
    """(B, T, C) from the equations: every layer in float64, then the head on the last step's
    output (pooling last) or on the mean of the outputs so far (pooling mean)."""
    hidden = x
    for params in layer_params(model):
        if "weight_xa" in params:
            hidden, _, _ = reference_eleatt_gru(hidden, None, None, params)
        else:
            hidden = reference_plain_gru(hidden, None, params)
    if model.config.pooling == "mean":
        counts = torch.arange(1, x.shape[1] + 1, dtype=x.dtype)
        hidden = hidden.cumsum(dim=1) / counts[:, None]
    return hidden @ model.head.weight.detach().t() + model.head.bias.detach()


def make_model(eleatt: int, plain: int, pooling: str, seed: int = 0) -> SequenceClassifier:
    torch.manual_seed(seed)
    config = ClassifierConfig(
        input_size=6,
        num_classes=4,
        hidden_size=5,
        num_eleatt_layers=eleatt,
        num_plain_layers=plain,
        dropout=0.0,
        pooling=pooling,
    )
    return SequenceClassifier(config).double().eval()


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize(("eleatt", "plain"), STACKS)
def test_stepping_with_carried_state_matches_the_reference(eleatt, plain, pooling):
    model = make_model(eleatt, plain, pooling)
    x = torch.randn(3, 9, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = reference_running_scores(model, x)
    with torch.no_grad():
        state, frames = None, []
        for t in range(x.shape[1]):
            scores, state = model.step(x[:, t], state)  # (B, C): one frame, never the prefix
            frames.append(scores)
        stepped = torch.stack(frames, dim=1)
        chunked = torch.cat(
            [model.step(x[:, :4])[0], model.step(x[:, 4:], model.step(x[:, :4])[1])[0]], dim=1
        )
        running = model.running_scores(x)
        whole = model(x)
    assert state.num_steps.tolist() == [9, 9, 9]
    assert_close(stepped, expected, atol=1e-10, name="stepped one frame at a time")
    assert_close(chunked, expected, atol=1e-10, name="stepped in two chunks")
    assert_close(running, expected, atol=1e-10, name="running_scores")
    # The last running score is the whole-clip prediction the model was trained to give.
    assert_close(whole, expected[:, -1], atol=1e-10, name="forward")


@pytest.mark.parametrize(("eleatt", "plain"), [(1, 0), (0, 1), (1, 1)])
def test_float32_stepping_follows_the_reference(eleatt, plain):
    """The stream runs in float32 (the fused EleAtt-GRU path): within float32 rounding."""
    model64 = make_model(eleatt, plain, "last", seed=3)
    model32 = make_model(eleatt, plain, "last", seed=3).float()
    x = torch.randn(2, 12, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected = reference_running_scores(model64, x)
    with torch.no_grad():
        state, frames = None, []
        for t in range(x.shape[1]):
            scores, state = model32.step(x[:, t].float(), state)
            frames.append(scores)
    assert_close(torch.stack(frames, dim=1), expected, atol=2e-5, name="float32 stream")


def test_running_scores_are_zero_after_each_length_and_ignore_later_steps():
    model = make_model(1, 1, "mean")
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    lengths = torch.tensor([7, 4])
    with torch.no_grad():
        running = model.running_scores(x, lengths)
        changed = x.clone()
        changed[:, 5:] = 100.0  # the future: must not move any earlier step's score
        later = model.running_scores(changed, lengths)
        short = model(x[1:, :4])
    assert bool(running[1, 4:].eq(0).all())
    assert_close(later[:, :5], running[:, :5], atol=0.0, name="no look-ahead")
    assert_close(running[1, 3], short[0], atol=1e-10, name="last valid step = forward")


def test_stack_states_of_the_wrong_length_are_refused():
    model = make_model(1, 2, "last")
    state = model.initial_state(1)
    state.layers = state.layers[:2]
    with pytest.raises(ValueError, match=r"holds 2 layer state.*has 3 layers"):
        model.step(torch.zeros(1, 6, dtype=torch.float64), state)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_resetting_some_streams_starts_them_afresh_and_leaves_the_others(pooling):
    """Streams of one batch restarted at different steps (the staggered state policy): each
    gets the running scores of its own sequence from its restart on."""
    model = make_model(1, 1, pooling)
    x = torch.randn(2, 8, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    restart = 3  # stream 1 restarts before step 3; stream 0 runs on
    with torch.no_grad():
        state, frames = None, []
        for t in range(8):
            if t == restart:
                state = state.reset(torch.tensor([False, True]))
            scores, state = model.step(x[:, t], state)
            frames.append(scores)
    stepped = torch.stack(frames, dim=1)
    assert_close(stepped[0], reference_running_scores(model, x[:1])[0], atol=1e-10, name="kept")
    assert_close(
        stepped[1, restart:],
        reference_running_scores(model, x[1:, restart:])[0],
        atol=1e-10,
        name="restarted",
    )
    assert state.num_steps.tolist() == [8, 8 - restart]
