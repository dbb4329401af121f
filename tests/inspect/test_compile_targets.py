"""What the kernels must compile to for sm_90 (H100/H200), judged without a GPU from real offline compiles
(``python -m fastinception inspect``: ptxas's report and the SASS of each kernel, launch and autotune config).

- No register spills in any forward kernel (every dtype, both input layouts) or in any fp16/bf16 backward kernel:
  a spill puts local-memory traffic in the inner loop.
- Every fp16, bf16 and tf32 tl.dot runs on wgmma, Hopper's tensor-core instruction (not mma.sync or FMA).
- Forward tiles are loaded by asynchronous copies (cp.async), 16 bytes each where a tile row spans 64 bytes or
  more (BLOCK_K of 32 or wider in fp16): a plain load stalls the warp on every tile.

The default run checks the forward fp16 channels-last launches of block 3a (the first two configs of each);
``-m slow`` the whole default matrix (fp16, bf16, fp32 with and without tf32, both layouts, every kernel, every
config), a few minutes of compiles.
"""
import json

import pytest

from helpers import inspect_command

FORWARD_KERNELS = ("stem_forward", "conv2d_bias_relu", "conv2d_bias_relu_pair")
TENSOR_CORE_DTYPES = ("fp16", "bf16", "fp32+tf32")
REDUCTIONS_WITHOUT_DOT = ("reduce_partials",)


def _rows(directory, *args):
    # the default compile cache, as the launch-shape tests use it: a kernel compiled by one test (or by the default
    # run before -m slow) is read back by the next, not compiled again
    result = inspect_command(*args, "--json", "report.json", "--jobs", "2", cwd=directory)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((directory / "report.json").read_text())
    assert report["header"]["failed"] == [] and report["rows"]
    return report["rows"]


def _kernel(row):
    return row["kernel"].split(" ")[0]


def _block_k(row):
    return int(row["config"].split(" ")[0].split("x")[2])


def _where(row):
    return f"{row['kernel']} {row['config']} {row['dtype']} {row['layout']}"


def assert_no_spills(rows):
    spilling = [f"{_where(r)}: {r['spill_bytes']} bytes" for r in rows if r["spill_bytes"]]
    assert not spilling, spilling


def assert_wgmma(rows):
    dots = [r for r in rows if r["dtype"] in TENSOR_CORE_DTYPES and _kernel(r) not in REDUCTIONS_WITHOUT_DOT]
    assert dots
    other = [f"{_where(r)}: {r['mma']}" for r in dots if r["mma"] != "wgmma"]
    assert not other, other


def assert_async_tile_loads(rows):
    forward = [r for r in rows if _kernel(r) in FORWARD_KERNELS]
    assert forward
    plain = [f"{_where(r)}: {r['loads']}" for r in forward if r["loads"] not in ("cp.async", "cp.async<16B")]
    assert not plain, plain
    wide = [r for r in forward
            if _kernel(r) != "stem_forward" and r["dtype"] in ("fp16", "bf16") and _block_k(r) >= 32]
    assert wide
    narrow = [f"{_where(r)}: {r['loads']}" for r in wide if r["loads"] != "cp.async"]
    assert not narrow, narrow


@pytest.fixture(scope="module")
def fp16_forward(tmp_path_factory):
    # the autotuner's first two configs a launch; every config under -m slow (full_matrix)
    return _rows(tmp_path_factory.mktemp("fp16-forward"), "--kernels", ",".join(FORWARD_KERNELS[:2]),
                 "--dtypes", "fp16", "--layouts", "channels_last", "--configs", "2")


@pytest.fixture(scope="module")
def full_matrix(tmp_path_factory):
    return _rows(tmp_path_factory.mktemp("full-matrix"))


def test_fp16_forward_compiles_to_wgmma_and_async_copies_without_spills(fp16_forward):
    assert {_kernel(r) for r in fp16_forward} == set(FORWARD_KERNELS[:2])
    assert_no_spills(fp16_forward)
    assert_wgmma(fp16_forward)
    assert_async_tile_loads(fp16_forward)


@pytest.mark.slow
def test_no_forward_kernel_spills(full_matrix):
    forward = [r for r in full_matrix if _kernel(r) in FORWARD_KERNELS]
    assert {(r["dtype"], r["layout"]) for r in forward} == {
        (d, layout) for d in ("fp16", "bf16", "fp32", "fp32+tf32") for layout in ("nchw", "channels_last")}
    assert_no_spills(forward)


@pytest.mark.slow
def test_no_half_precision_backward_kernel_spills(full_matrix):
    backward = [r for r in full_matrix if _kernel(r) not in FORWARD_KERNELS and r["dtype"] in ("fp16", "bf16")]
    assert {_kernel(r) for r in backward} == {"conv_relu_dgrad", "conv_relu_wgrad", "stem_dgrad", "stem_wgrad",
                                             "reduce_partials"}
    assert_no_spills(backward)


@pytest.mark.slow
def test_every_tensor_core_dot_is_wgmma(full_matrix):
    assert_wgmma(full_matrix)


@pytest.mark.slow
def test_forward_tiles_load_asynchronously(full_matrix):
    assert_async_tile_loads(full_matrix)


# The kernels of the block programs, forward and backward, on Inception-v3 blocks.
PROGRAM_DOT_KERNELS = ("pointwise_stem", "conv2d_general", "conv2d_input_grad", "conv2d_weight_grad")
BATCHNORM_KERNELS = ("bn_finalize", "bn_relu", "bn_grad_partials", "bn_grad_combine", "bn_input_grad")


def assert_program_kernels(rows):
    assert_no_spills(rows)
    dots = [r for r in rows if _kernel(r) in PROGRAM_DOT_KERNELS and " bias " not in f"{r['kernel']} "]
    # reduce_partials: the weight grads whose pixel sum is split (on v3's blocks at batch 32, some of every block's);
    # relu_mask: what the backward keeps of the output when autograd records; bn_*: training with batch statistics
    assert {_kernel(r) for r in rows} == {*PROGRAM_DOT_KERNELS, "pool2d", "pool2d_input_grad", "reduce_partials",
                                          "relu_mask", *BATCHNORM_KERNELS}
    stats = [r for r in dots if r["kernel"].endswith("+stats")]
    assert stats, "expected the convs that write BatchNorm's statistics"
    other = [f"{_where(r)}: {r['mma']}" for r in dots if r["dtype"] in TENSOR_CORE_DTYPES and r["mma"] != "wgmma"]
    assert not other, other
    plain = [f"{_where(r)}: {r['loads']}" for r in dots if r["loads"] not in ("cp.async", "cp.async<16B")]
    assert not plain, plain


@pytest.mark.slow  # a minute of compiles; the default run compiles block 3a's forward above
def test_v3_block_kernels_compile_to_wgmma_and_async_copies_without_spills(tmp_path):
    # the E block: a stem with a commuted average, 3x3, 1x3 / 3x1 splits, the pool's bias and ReLU
    assert_program_kernels(_rows(tmp_path, "--block", "Mixed_7c", "--batch", "32", "--dtypes", "fp16",
                                 "--layouts", "channels_last"))


# Every dtype and both layouts on C (1x7 / 7x1 convs, a commuted average) and D (stride-2 3x3 convs, a stride-2 max
# pool); the E block's 1x3 / 3x1 splits run above in fp16. A's 5x5 and B's ops are the same kernels with other
# constants.
@pytest.mark.slow
@pytest.mark.parametrize("block", ["Mixed_6b", "Mixed_7a"])
def test_v3_block_kernels_compile_without_spills_in_every_dtype_and_layout(tmp_path, block):
    assert_program_kernels(_rows(tmp_path, "--block", block, "--batch", "32"))
