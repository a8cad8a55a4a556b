"""Layer stack, sequence classifier, parameter counts, the toy main job and doc examples."""

from __future__ import annotations

import doctest

import pytest
import torch
from eleatt_reference import assert_close
from torch import nn

from video_eleatt.models import classifier as classifier_module
from video_eleatt.models import eleatt as eleatt_module
from video_eleatt.models import stack as stack_module
from video_eleatt.models import toy
from video_eleatt.models.classifier import ClassifierConfig, SequenceClassifier
from video_eleatt.models.eleatt import EleAttGRU, EleAttLSTM, EleAttRNN
from video_eleatt.models.stack import RecurrentStack

NUM_GATES = {"gru": 3, "lstm": 4, "rnn": 1}
TORCH_LAYERS = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def batch_with_lengths(batch=4, steps=6, input_size=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, input_size, dtype=torch.float64, generator=generator)
    lengths = torch.tensor([steps, 2, 1, steps - 1][:batch])
    return x, lengths


def first_state(state):
    return state[0] if isinstance(state, tuple) else state


# --- stack ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_stack_shapes_and_layer_types(cell):
    stack = RecurrentStack(cell, 5, 3, num_eleatt_layers=2, num_plain_layers=2).double()
    x, lengths = batch_with_lengths()
    output, states, attentions = stack(x, lengths=lengths, return_attention=True)
    assert output.shape == (4, 6, 3)
    assert len(states) == 4
    for state in states:
        if cell == "lstm":
            assert isinstance(state, tuple) and [s.shape for s in state] == [(4, 3), (4, 3)]
        else:
            assert state.shape == (4, 3)
    assert [tuple(a.shape) for a in attentions] == [(4, 6, 5), (4, 6, 3)]
    eleatt_class = {"gru": EleAttGRU, "lstm": EleAttLSTM, "rnn": EleAttRNN}[cell]
    assert all(type(layer) is eleatt_class for layer in stack.eleatt_layers)
    assert type(stack.plain) is TORCH_LAYERS[cell] and stack.plain.num_layers == 2
    assert stack.layer_names() == [f"eleatt_{cell}1", f"eleatt_{cell}2", f"{cell}3", f"{cell}4"]
    valid = torch.arange(6) < lengths.unsqueeze(1)
    assert torch.all(output[~valid] == 0) and torch.all(attentions[1][~valid] == 0)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_plain_stack_is_the_torch_stack_per_sequence(cell):
    """m = 0: each sequence alone through torch's multi-layer module, unpadded."""
    torch.manual_seed(1)
    stack = RecurrentStack(cell, 5, 3, num_eleatt_layers=0, num_plain_layers=3).double()
    reference = TORCH_LAYERS[cell](5, 3, num_layers=3, batch_first=True).double()
    reference.load_state_dict(stack.plain.state_dict())
    x, lengths = batch_with_lengths()
    output, states, attentions = stack(x, lengths=lengths, return_attention=True)
    assert attentions == [] and len(states) == 3
    for b, length in enumerate(lengths.tolist()):
        alone_output, alone_final = reference(x[b : b + 1, :length])
        assert_close(output[b, :length], alone_output[0], atol=1e-12, name="output")
        assert torch.all(output[b, length:] == 0)
        alone_h = first_state(alone_final)  # (layers, 1, N)
        for layer, state in enumerate(states):
            assert_close(first_state(state)[b], alone_h[layer, 0], atol=1e-12, name="h_n")


def test_mixed_stack_equals_layers_composed_by_hand():
    torch.manual_seed(2)
    stack = RecurrentStack("gru", 5, 3, num_eleatt_layers=1, num_plain_layers=1).double()
    x, lengths = batch_with_lengths()
    output, states, _ = stack(x, lengths=lengths)
    first_output, first_h, _ = stack.eleatt_layers[0](x, lengths=lengths)
    for b, length in enumerate(lengths.tolist()):
        alone, alone_h = stack.plain(first_output[b : b + 1, :length])
        assert_close(output[b, :length], alone[0], atol=1e-12, name="output")
        assert_close(states[1][b], alone_h[0, 0], atol=1e-12, name="h_n layer 2")
    assert_close(states[0], first_h, atol=1e-12, name="h_n layer 1")


def test_dropout_between_layers_not_after_the_last():
    x, lengths = batch_with_lengths()
    single = RecurrentStack("gru", 5, 3, num_eleatt_layers=1, dropout=0.9).double().train()
    assert torch.equal(single(x, lengths)[0], single.eval()(x, lengths)[0])
    double = RecurrentStack("gru", 5, 3, num_eleatt_layers=2, dropout=0.9).double().train()
    torch.manual_seed(0)
    assert not torch.equal(double(x, lengths)[0], double.eval()(x, lengths)[0])
    mixed = RecurrentStack("gru", 5, 3, num_eleatt_layers=1, num_plain_layers=2, dropout=0.3)
    assert mixed.plain.dropout == 0.3  # torch applies it between its own layers
    assert RecurrentStack("gru", 5, 3, 0, 1, dropout=0.3).plain.dropout == 0.0


# --- classifier ----------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_pooling_matches_hand_computation_from_step_scores(pooling):
    torch.manual_seed(3)
    config = ClassifierConfig(
        input_size=5, num_classes=4, hidden_size=3, num_plain_layers=1, pooling=pooling
    )
    model = SequenceClassifier(config).double().eval()
    x, lengths = batch_with_lengths()
    logits = model(x, lengths)
    hidden, _, _ = model.stack(x, lengths=lengths)  # (B, T, N)
    step_logits = hidden @ model.head.weight.T + model.head.bias  # (B, T, C)
    for b, length in enumerate(lengths.tolist()):
        expected = (
            step_logits[b, :length].mean(0) if pooling == "mean" else step_logits[b, length - 1]
        )
        assert_close(logits[b], expected, atol=1e-12, name=f"logits of sequence {b}")
    scores = model.step_scores(x, lengths)
    valid = torch.arange(6) < lengths.unsqueeze(1)
    assert_close(scores[valid], step_logits[valid], atol=1e-12, name="step scores")
    assert torch.all(scores[~valid] == 0)


@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_classifier_scores_are_padding_invariant(cell, pooling):
    torch.manual_seed(4)
    config = ClassifierConfig(
        input_size=5,
        num_classes=4,
        cell=cell,
        hidden_size=3,
        num_eleatt_layers=2,
        num_plain_layers=1,
        pooling=pooling,
    )
    model = SequenceClassifier(config).double().eval()
    x, lengths = batch_with_lengths()
    logits, attentions = model(x, lengths, return_attention=True)
    garbage = 50 * torch.randn(4, 9, 5, dtype=torch.float64)
    valid = torch.arange(9) < lengths.unsqueeze(1)
    padded = torch.where(valid.unsqueeze(2), torch.cat([x, x[:, :3]], dim=1), garbage)
    padded_logits, padded_attentions = model(padded, lengths, return_attention=True)
    assert_close(padded_logits, logits, atol=1e-12, name="logits")
    for mine, theirs in zip(padded_attentions, attentions):
        assert_close(mine[:, :6], theirs, atol=1e-12, name="attention")
    # Without lengths every step counts: the garbage must then change the scores.
    assert not torch.allclose(model(padded), logits)


def test_input_standardisation_is_the_classifier_on_standardised_features():
    torch.manual_seed(5)
    config = ClassifierConfig(5, 4, hidden_size=3, input_norm="standardize", dropout=0.0)
    model = SequenceClassifier(config).double().eval()
    assert model.needs_input_statistics
    mean = torch.tensor([1.0, -2.0, 0.5, 100.0, 0.0], dtype=torch.float64)
    std = torch.tensor([2.0, 0.1, 1.0, 50.0, 0.0], dtype=torch.float64)  # a constant dimension
    model.set_input_statistics(mean, std)
    assert not model.needs_input_statistics
    assert torch.equal(model.input_std, std.clamp(min=1e-6))
    # the same weights without standardisation, fed the standardised features by hand
    plain = SequenceClassifier(ClassifierConfig(5, 4, hidden_size=3, dropout=0.0)).double()
    plain.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith("input_")}
    )
    x, lengths = batch_with_lengths()
    x = x * std.clamp(min=1) + mean  # features at the statistics' scale
    by_hand = plain((x - mean) / std.clamp(min=1e-6), lengths)
    assert_close(model(x, lengths), by_hand, atol=1e-12, name="logits")
    # the statistics are buffers: saved and loaded with the weights (checkpoints)
    copy = SequenceClassifier(config).double()
    copy.load_state_dict(model.state_dict())
    assert not copy.needs_input_statistics
    assert_close(copy.eval()(x, lengths), by_hand, atol=1e-12, name="reloaded logits")
    # padding stays invisible: padded steps are standardised too but never read
    garbage = 50 * torch.randn(4, 9, 5, dtype=torch.float64)
    valid = torch.arange(9) < lengths.unsqueeze(1)
    padded = torch.where(valid.unsqueeze(2), torch.cat([x, x[:, :3]], dim=1), garbage)
    assert_close(model(padded, lengths), by_hand, atol=1e-12, name="padded logits")

    with pytest.raises(ValueError, match=r"finite \(5,\) vector"):
        model.set_input_statistics(mean[:4], std[:4])
    with pytest.raises(ValueError, match="finite"):
        model.set_input_statistics(mean, std * float("nan"))
    with pytest.raises(ValueError, match="input_norm='standardize'"):
        plain.set_input_statistics(mean, std)
    with pytest.raises(ValueError, match="unknown input_norm 'zscore'"):
        ClassifierConfig(5, 4, input_norm="zscore")


def test_full_length_batch_needs_no_lengths():
    model = SequenceClassifier(ClassifierConfig(5, 4, hidden_size=3, dropout=0.0)).double()
    x, _ = batch_with_lengths()
    assert torch.equal(model(x), model(x, torch.full((4,), 6)))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=6\]; got values from 1 to 7"):
        model(x, torch.tensor([7, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"input size D=5 but got input of size 7"):
        model(torch.randn(4, 6, 7, dtype=torch.float64))


# --- parameter counts ----------------------------------------------------------------------


def eleatt_formula(d, n, gates):
    """The paper's count, adapted to torch's two biases: gate D(D+N+1) + G·N(D+N+2)."""
    return d * (d + n + 1) + gates * n * (d + n + 2)


def plain_formula(d, n, gates):
    return gates * n * (d + n + 2)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_parameter_counts_follow_the_formula(cell):
    gates = NUM_GATES[cell]
    config = ClassifierConfig(
        input_size=7,
        num_classes=5,
        cell=cell,
        hidden_size=4,
        num_eleatt_layers=2,
        num_plain_layers=2,
    )
    counts = SequenceClassifier(config).parameter_counts()
    assert counts == {
        f"eleatt_{cell}1": eleatt_formula(7, 4, gates),
        f"eleatt_{cell}2": eleatt_formula(4, 4, gates),
        f"{cell}3": plain_formula(4, 4, gates),
        f"{cell}4": plain_formula(4, 4, gates),
        "head": 4 * 5 + 5,
        "total": eleatt_formula(7, 4, gates)
        + eleatt_formula(4, 4, gates)
        + 2 * plain_formula(4, 4, gates)
        + 25,
    }


def test_parameter_counts_rgb_setting():
    """D = 2048 ResNet-50 features, N = 512: the gate (D×D) outweighs the GRU it feeds."""
    with torch.device("meta"):
        model = SequenceClassifier(ClassifierConfig(2048, 60, hidden_size=512, num_eleatt_layers=3))
    counts = model.parameter_counts()
    assert counts["eleatt_gru1"] == 2048 * 2561 + 3 * 512 * 2562 == 9_180_160
    assert counts["eleatt_gru2"] == eleatt_formula(512, 512, 3) == 2_100_736
    assert counts["total"] == 9_180_160 + 2 * 2_100_736 + 512 * 60 + 60


def test_parameter_counts_paper_skeleton_setting():
    """Paper: 3-EleAtt-GRU(100) ~0.28M vs 3-GRU(128) ~0.31M, D = 150, 60 NTU classes.

    Ours: 280,710 and 313,404. The single-bias (Keras) form has 3N fewer per layer: 279,810 and
    312,252, so the whole difference from the paper's formula is the second GRU bias.
    """
    eleatt = SequenceClassifier(
        ClassifierConfig(150, 60, hidden_size=100, num_eleatt_layers=3)
    ).parameter_counts()
    baseline = SequenceClassifier(
        ClassifierConfig(150, 60, hidden_size=128, num_eleatt_layers=0, num_plain_layers=3)
    ).parameter_counts()
    assert eleatt["total"] == 280_710 and round(eleatt["total"] / 1e6, 2) == 0.28
    assert baseline["total"] == 313_404 and round(baseline["total"] / 1e6, 2) == 0.31
    keras_eleatt = 150 * 251 + 3 * 100 * 251 + 2 * (100 * 201 + 3 * 100 * 201) + 6060
    assert eleatt["total"] - keras_eleatt == 3 * 3 * 100


# --- configuration errors --------------------------------------------------------------------


def test_bad_configuration_raises_clear_errors():
    with pytest.raises(
        ValueError, match=r"unknown cell type 'transformer'; choose one of gru, lstm, rnn"
    ):
        ClassifierConfig(5, 4, cell="transformer")
    with pytest.raises(ValueError, match=r"unknown cell type 'GRU'; choose one of gru, lstm, rnn"):
        RecurrentStack("GRU", 5, 3)
    with pytest.raises(ValueError, match=r"unknown pooling 'max'; choose one of mean, last"):
        ClassifierConfig(5, 4, pooling="max")
    with pytest.raises(ValueError, match=r"unknown gate_activation 'tanh'"):
        ClassifierConfig(5, 4, gate_activation="tanh")
    with pytest.raises(
        ValueError, match=r"at least one layer.*num_eleatt_layers=0, num_plain_layers=0"
    ):
        SequenceClassifier(ClassifierConfig(5, 4, num_eleatt_layers=0, num_plain_layers=0))
    with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\); got 1.5"):
        RecurrentStack("gru", 5, 3, dropout=1.5)
    with pytest.raises(ValueError, match=r"num_classes must be at least 1; got 0"):
        ClassifierConfig(5, 0)
    stack = RecurrentStack("lstm", 5, 3, num_eleatt_layers=0, num_plain_layers=1)
    with pytest.raises(
        ValueError, match=r"RecurrentStack was built for input size D=5 but got .* 4"
    ):
        stack(torch.randn(2, 3, 4))
    with pytest.raises(
        ValueError, match=r"RecurrentStack: lengths must have shape \(B,\) = \(2,\)"
    ):
        stack(torch.randn(2, 3, 5), lengths=torch.tensor([3]))


# --- the toy main job and documentation examples ---------------------------------------------


def test_toy_main_prints_both_losses_and_accuracies(capsys):
    argv = ["--steps", "4", "--log_every", "2", "--batch_size", "8", "--num_test", "16"]
    assert toy.main(argv) == 0
    out = capsys.readouterr().out
    assert "TOY TASK (not a result)" in out
    lines = out.splitlines()
    header = next(
        i for i, line in enumerate(lines) if "baseline GRU" in line and "EleAtt-GRU" in line
    )
    rows = [lines[header + 1].split(), lines[header + 2].split()]
    assert [row[0] for row in rows] == ["1-2", "3-4"]
    assert all(len(row) == 3 and 0 < float(row[1]) < 5 and 0 < float(row[2]) < 5 for row in rows)
    assert "held-out accuracy on 16 sequences" in out
    # Seeded: a second run prints the same losses.
    assert toy.main(argv) == 0
    again = capsys.readouterr().out.splitlines()
    assert again[header + 1 : header + 3] == lines[header + 1 : header + 3]


def test_toy_task_is_about_order():
    config = toy.ToyConfig(max_steps=10, noise_channels=3)
    features, lengths, labels = toy.make_order_task(64, config, torch.Generator().manual_seed(0))
    assert features.shape == (64, 10, 5) and labels.max() < 4
    signal = features[:, :, :2]  # (B, T, 2): two unit pulses per sequence
    assert torch.equal(signal.sum(dim=(1, 2)), torch.full((64,), 2.0))
    times = signal.sum(dim=2).nonzero()[:, 1].view(64, 2)  # both pulse times, in order
    first = signal[torch.arange(64), times[:, 0]].argmax(1)
    second = signal[torch.arange(64), times[:, 1]].argmax(1)
    assert torch.equal(labels, first * 2 + second)
    assert torch.all(times[:, 1] < lengths) and torch.all(
        features[torch.arange(10) >= lengths[:, None]] == 0
    )


def test_toy_rejects_bad_options(capsys):
    with pytest.raises(SystemExit):
        toy.main(["--steps", "0"])
    assert "--steps, --log_every and --batch_size must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        toy.main(["--max_steps", "3"])
    assert "--max_steps must be at least 4 (two events); got 3" in capsys.readouterr().err


@pytest.mark.parametrize("module", [eleatt_module, stack_module, classifier_module])
def test_docstring_examples_run(module):
    torch.manual_seed(0)
    result = doctest.testmod(module, extraglobs={"torch": torch})
    assert result.attempted > 0 and result.failed == 0
