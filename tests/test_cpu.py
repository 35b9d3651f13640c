"""convzoo.cpu: CPU flags, oneDNN default, the bfloat16 warning (no TensorFlow needed)."""
import os
import subprocess
import sys

from convzoo import cpu

AVX2 = {"avx2", "fma"}
SAPPHIRE = {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile"}


def test_onednn_state_follows_tensorflow_rule_and_user_setting():
    assert cpu.onednn_state(AVX2, env={}) == (False, "TensorFlow's default on this CPU")
    assert cpu.onednn_state(SAPPHIRE, env={})[0] is True
    assert cpu.onednn_state(AVX2, env={"TF_ENABLE_ONEDNN_OPTS": "1"})[0] is True
    assert cpu.onednn_state(SAPPHIRE, env={"TF_ENABLE_ONEDNN_OPTS": "0"})[0] is False


def test_bf16_warning_only_without_hardware():
    assert "emulated" in cpu.precision_warning("mixed_bfloat16", AVX2)
    assert cpu.precision_warning("mixed_bfloat16", SAPPHIRE) is None
    assert cpu.precision_warning("float32", AVX2) is None


def _onednn_env(env):
    code = "import os, convzoo; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_importing_convzoo_turns_onednn_on_unless_the_user_said():
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    expected = "1" if os.uname().machine in ("x86_64", "amd64") else "None"
    assert _onednn_env(env) == expected
    assert _onednn_env({**env, "TF_ENABLE_ONEDNN_OPTS": "0"}) == "0"


def test_describe_names_the_cpu_and_onednn():
    line = cpu.describe()
    assert line.startswith("CPU: ") and "oneDNN " in line and "threads:" in line
