"""Load settings: unsupported ones fail up front with a message naming the setting and what is missing."""
import importlib.util

import pytest
import torch

from adaptive.errors import InputError
from adaptive.backends.hf.load_options import ModelOptions, check_supported
from adaptive.backends.hf.loading import load_model


@pytest.mark.parametrize("opts, device, dtype, msg", [
    (ModelOptions(quantization="bnb-4bit"), "cpu", torch.float32, "needs a CUDA device"),
    (ModelOptions(quantization="dynamic-int8"), "cuda", torch.float32, "CPU only"),
    (ModelOptions(quantization="dynamic-int8"), "cpu", torch.bfloat16, "float32"),
    (ModelOptions(attention="flash_attention_2"), "cpu", torch.float32, "CUDA"),
])
def test_unsupported_settings_raise(opts, device, dtype, msg):
    with pytest.raises(InputError, match=msg):
        check_supported(opts, device, dtype)


@pytest.mark.skipif(importlib.util.find_spec("torchao") is not None, reason="torchao is installed here")
def test_missing_quantization_package_names_it():
    with pytest.raises(InputError, match="pip install torchao"):
        check_supported(ModelOptions(quantization="torchao-int8"), "cpu", torch.float32)


@pytest.mark.parametrize("kw, msg", [({"quantization": "int3"}, "quantization='int3'"),
                                     ({"attention": "magic"}, "attention='magic'"), ({"compile": "yes"}, "compile")])
def test_bad_option_values(kw, msg):
    with pytest.raises(InputError, match=msg):
        ModelOptions(**kw)


def test_half_precision_without_kernels_is_a_clear_error(monkeypatch):
    def no_kernel(*a, **k):
        raise RuntimeError('"softmax_lastdim_kernel_impl" not implemented for \'Half\'')

    monkeypatch.setattr(torch, "softmax", no_kernel)
    with pytest.raises(InputError, match="float16 is not supported on cpu"):
        check_supported(ModelOptions(), "cpu", torch.float16)


def test_bad_setting_fails_before_loading(monkeypatch):
    import adaptive.backends.hf.loading as models

    monkeypatch.setattr(models, "embedded_model_dir", lambda: pytest.fail("loaded a model before checking"))
    with pytest.raises(InputError, match="bitsandbytes|CUDA"):
        load_model(None, device="cpu", quantization="bnb-8bit")


@pytest.mark.model
def test_dynamic_int8_loads_and_generates():
    from adaptive.backends.base import Request, SamplingParams
    from adaptive.backends.hf import HFBackend

    model, tok, mid = load_model(None, device="cpu", quantization="dynamic-int8")
    assert any("quantized" in type(m).__module__ for m in model.modules())
    g = HFBackend(model, tok, mid).generate([Request("Hi", n=2)], SamplingParams(max_new_tokens=4, seed=0))
    assert [c.n_tokens for c in g.completions[0]] and g.usage.generated_tokens > 0
