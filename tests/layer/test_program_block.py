"""ProgramBlock: any block program as a module, against the reference interpreter in float64."""
import pytest
import torch

from fastinception import ProgramBlock
from fastinception.blocks import programs as P
from fastinception.reference.program import run_reference

from helpers import FORMATS, assert_close, make_input

PROGRAM = P.inception_v3_e(16, P.AVG_3X3_EXCLUDE_PAD, name="FIDInceptionE_1")


def _block(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return ProgramBlock(PROGRAM, dtype=dtype)


def _reference(block, x):
    weights = [(w.detach().double(), b.detach().double()) for w, b in block.weights()]
    return run_reference(block.program, weights, x.detach().double())


@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
def test_forward_and_gradients_match_the_reference(fmt):
    block = _block()
    x = make_input((2, 16, 5, 4), fmt, seed=1).requires_grad_()
    y = block(x)
    assert y.is_contiguous(memory_format=FORMATS[fmt]) and y.shape == (2, 2048, 5, 4)
    assert_close(y, _reference(block, x), torch.float32, "forward")
    y.square().sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in block.parameters())


def test_from_weights_copies_and_state_dict_round_trips():
    block = _block(seed=1)
    copy = ProgramBlock.from_weights(PROGRAM, [(w.detach().clone(), b.detach().clone()) for w, b in block.weights()])
    fresh = _block(seed=2)
    fresh.load_state_dict(block.state_dict())
    x = make_input((1, 16, 3, 3), seed=2)
    with torch.no_grad():
        assert torch.equal(copy(x), block(x)) and torch.equal(fresh(x), block(x))
    assert list(block.state_dict())[:2] == ["convs.0.weight", "convs.0.bias"]


def test_from_weights_keeps_each_weights_memory_format():
    # a channels_last model converts to channels_last blocks: oneDNN would otherwise reorder the weights every call
    weights = [(w.contiguous(memory_format=torch.channels_last) if k % 2 else w, b)
               for k, (w, b) in enumerate((c.weight.detach(), c.bias.detach()) for c in _block().convs)]
    block = ProgramBlock.from_weights(PROGRAM, weights)
    for k, (w, _) in enumerate(block.weights()):
        assert w.is_contiguous(memory_format=torch.channels_last if k % 2 else torch.contiguous_format), k
        assert w.requires_grad and torch.equal(w, weights[k][0])


def test_under_autocast_it_computes_in_the_autocast_dtype():
    block = _block()
    x = make_input((2, 16, 4, 4), seed=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = block(x)
    assert y.dtype == torch.bfloat16
    assert_close(y, _reference(block, x), torch.bfloat16, "autocast")


def test_torch_func_grad_matches_autograd():
    block = _block()
    x = make_input((1, 16, 3, 3), seed=4)
    got = torch.func.grad(lambda t: block(t).square().sum())(x)
    xx = x.clone().requires_grad_()
    block(xx).square().sum().backward()
    assert_close(got, xx.grad, torch.float32, "func.grad")


@pytest.mark.parametrize("call, error, message", [
    (lambda b: b(torch.randn(1, 15, 4, 4)), ValueError, r"expected an \(N, 16, H, W\) tensor"),
    (lambda b: b(torch.randn(16, 4, 4)), ValueError, "expected an"),
    (lambda b: b(torch.randn(1, 16, 4, 4, dtype=torch.float64)), TypeError, "torch.float64, the block's"),
    (lambda b: b(torch.randn(1, 16, 1, 1), out=torch.empty(2, 2048, 1, 1)), ValueError, "out must be"),
    (lambda b: setattr(b, "backend", "cuda"), ValueError, "backend must be one of"),
    (lambda b: ProgramBlock("InceptionE"), TypeError, "BlockProgram"),
])
def test_bad_calls_are_refused_clearly(call, error, message):
    with pytest.raises(error, match=message):
        call(_block())
