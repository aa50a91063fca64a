import subprocess
import sys

import pytest

from service.settings import Settings, SettingsError, load_settings


def test_defaults_and_env(monkeypatch):
    monkeypatch.setenv("RANKER_MAX_CANDIDATES", "250")
    monkeypatch.setenv("RANKER_ADMIN_TOKEN", "x" * 20)
    s = load_settings()
    assert s.max_candidates == 250 and s.admin_token.get_secret_value() == "x" * 20
    assert s.host == "127.0.0.1" and s.ort_intra_op_threads == 1 and s.poll_interval == 10.0


def test_config_file_fills_what_env_and_overrides_do_not_set(monkeypatch, tmp_path):
    path = tmp_path / "ranker.yaml"
    path.write_text("max_candidates: 300\nport: 9001\nmodel-name: from-file\n")
    monkeypatch.setenv("RANKER_PORT", "9002")
    monkeypatch.setenv("RANKER_CONFIG_FILE", str(path))
    s = load_settings(model_name="from-override")
    assert (s.max_candidates, s.port, s.model_name) == (300, 9002, "from-override")


@pytest.mark.parametrize(("content", "match"), [
    ("max_candidates: 0\n", "max_candidates"),
    ("no_such_setting: 1\n", "no_such_setting"),
    ("- a list\n", "mapping"),
])
def test_bad_config_file_fails_at_startup(tmp_path, content, match):
    path = tmp_path / "ranker.yaml"
    path.write_text(content)
    with pytest.raises(SettingsError, match=match):
        load_settings(config_file=path)


def test_short_admin_token_is_refused():
    with pytest.raises(ValueError, match="admin_token"):
        Settings(admin_token="short")


def test_short_feedback_token_is_refused():
    with pytest.raises(ValueError, match="feedback_token"):
        Settings(feedback_token="short")
    assert Settings(feedback_token="f" * 16).feedback_token.get_secret_value() == "f" * 16


def test_to_env_round_trips(monkeypatch):
    s = Settings(max_candidates=123, ort_allow_spinning=False, admin_token="y" * 16)
    for k, v in s.to_env().items():
        monkeypatch.setenv(k, v)
    assert Settings() == s


def test_help_lists_every_setting():
    out = subprocess.run([sys.executable, "-m", "service.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for name in Settings.model_fields:
        assert f"--{name.replace('_', '-')}" in out.stdout, name
    assert "RANKER_" in out.stdout


def test_bad_cli_value_exits_2_with_a_message():
    out = subprocess.run([sys.executable, "-m", "service.cli", "--max-candidates", "0"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "max_candidates" in out.stderr
