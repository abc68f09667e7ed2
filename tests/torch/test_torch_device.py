import contextlib

import pytest
import torch


from transfer_course.torch import get_device, resolve_precision, seed_everything
from transfer_course.torch.device import describe_devices

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_device_order_on_this_machine():
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert get_device().type == expected
    assert get_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_asking_for_a_missing_gpu_explains():
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        get_device("cuda")


def test_fp32_is_a_null_context():
    p = resolve_precision("fp32", "cpu")
    assert p.scaler is None and isinstance(p.autocast(), contextlib.nullcontext)


def test_bf16_autocast_on_cpu_really_changes_dtype():
    p = resolve_precision("bf16", "cpu")
    layer = torch.nn.Linear(8, 4)
    with p.autocast():
        out = layer(torch.randn(2, 8))
    assert out.dtype == torch.bfloat16 and p.scaler is None


def test_fp16_on_cpu_is_refused_not_ignored():
    with pytest.raises(ValueError, match="needs a CUDA or MPS GPU"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="Valid choices: bf16, fp16, fp32"):
        resolve_precision("fp8", "cpu")


def test_seed_everything_repeats():
    seed_everything(3)
    a = torch.randn(5)
    seed_everything(3)
    assert torch.equal(a, torch.randn(5))


def test_describe_devices():
    info = describe_devices()
    assert info["version"] == torch.__version__ and isinstance(info["gpus"], list)


@gpu
def test_fp16_on_cuda_uses_a_scaler_and_halves():
    p = resolve_precision("fp16", "cuda")
    assert isinstance(p.scaler, torch.amp.GradScaler)
    layer = torch.nn.Linear(8, 4).cuda()
    with p.autocast():
        assert layer(torch.randn(2, 8, device="cuda")).dtype == torch.float16


@gpu
def test_bf16_on_cuda():
    if not torch.cuda.is_bf16_supported():
        pytest.skip("GPU without bf16")
    p = resolve_precision("bf16", "cuda")
    with p.autocast():
        assert torch.nn.Linear(8, 4).cuda()(torch.randn(2, 8, device="cuda")).dtype == torch.bfloat16
