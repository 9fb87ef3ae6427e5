"""`credentials`: HF token discovery and shape, OSMO hf-token via a stand-in osmo; the token never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dig_preflight.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "hf_" + "Q7xZ" * 8 + "k2"  # 37 characters like a real one; a distinctive string to search for


@pytest.fixture
def clean_hf(monkeypatch, tmp_path):
    """No token anywhere: env cleared, HOME and caches pointed at an empty tmp dir."""
    for var in ("HF_TOKEN", "HF_HOME", "HF_TOKEN_PATH", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["credentials", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def both_formats(capsys, *args: str) -> tuple[int, str, dict]:
    code, table, err = run(capsys, *args)
    code_j, text, err_j = run(capsys, *args, "--json")
    assert code == code_j
    for stream in (table, err, text, err_j):
        assert TOKEN not in stream and TOKEN[3:] not in stream
    return code, table, json.loads(text)


def rows(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def test_preflight_token_from_env_never_printed(capsys, clean_hf, no_osmo, caplog, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    caplog.set_level("DEBUG")
    code, table, report = both_formats(capsys, "--no-osmo")
    assert code == 0
    assert rows(report)["HF token"]["status"] == "ok" and "HF_TOKEN" in rows(report)["HF token"]["target"]
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("where", ["HF_HOME", "HF_TOKEN_PATH", "home-cache", "XDG_CACHE_HOME"])
def test_preflight_token_from_file(capsys, clean_hf, no_osmo, monkeypatch, where):
    tmp = clean_hf
    if where == "HF_HOME":
        path = tmp / "hfhome" / "token"
        monkeypatch.setenv("HF_HOME", str(tmp / "hfhome"))
    elif where == "HF_TOKEN_PATH":
        path = tmp / "elsewhere" / "tok"
        monkeypatch.setenv("HF_TOKEN_PATH", str(path))
    elif where == "XDG_CACHE_HOME":
        path = tmp / "xdg" / "huggingface" / "token"
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp / "xdg"))
    else:
        path = tmp / "home" / ".cache" / "huggingface" / "token"
    path.parent.mkdir(parents=True)
    path.write_text(TOKEN + "\n")
    code, _, report = both_formats(capsys, "--no-osmo")
    assert code == 0
    assert rows(report)["HF token"]["target"] == f"token file {path}"


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("hf_short", "too short"),
        ("xx_" + "a" * 34, "does not start with 'hf_'"),
        ("hf_" + "a" * 20 + " " + "b" * 13, "characters other than letters and digits"),
        ("hf_" + "a" * 120, "too long"),
    ],
)
def test_preflight_malformed_token(capsys, clean_hf, no_osmo, monkeypatch, token, problem):
    monkeypatch.setenv("HF_TOKEN", token)
    code, table, report = both_formats(capsys, "--no-osmo")
    assert code == 1
    row = rows(report)["HF token"]
    assert row["status"] == "fail" and problem in row["detail"]
    assert token not in table and token not in json.dumps(report)


def test_preflight_token_missing(capsys, clean_hf, no_osmo):
    code, table, report = both_formats(capsys)
    assert code == 1
    hf = rows(report)["HF token"]
    assert hf["status"] == "fail" and "export HF_TOKEN=hf_" in hf["hint"]
    assert rows(report)["OSMO credential hf-token"]["status"] == "skip"  # no osmo on PATH: said, not failed
    assert "osmo CLI not on PATH" in table


@pytest.mark.parametrize("group_flag", [False, True], ids=["flag-after-subcommand", "flag-on-group"])
def test_preflight_osmo_credential_present(capsys, clean_hf, monkeypatch, osmo_stub, group_flag):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    bindir = osmo_stub(
        {"credential list": (0, (FIXTURES / "credential_list_ok.json").read_text(), "")},
        group_flag=group_flag,
    )
    code, table, report = both_formats(capsys)
    assert code == 0
    assert rows(report)["OSMO credential hf-token"]["status"] == "ok"
    # The listing shows no payload keys: say the key is unverified instead of claiming it.
    assert rows(report)["OSMO credential hf-token keys"]["status"] == "warn"
    calls = (bindir / "calls.log").read_text().splitlines()
    if group_flag:
        assert calls[:2] == ["credential list --format-type json", "credential --format-type json list"]
    else:
        assert set(calls) == {"credential list --format-type json"}


def test_preflight_osmo_credential_missing(capsys, clean_hf, monkeypatch, osmo_stub):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    osmo_stub({"credential list": (0, (FIXTURES / "credential_list_no_hf.json").read_text(), "")})
    code, table, report = both_formats(capsys)
    assert code == 1
    row = rows(report)["OSMO credential hf-token"]
    assert row["status"] == "fail" and "present: my-s3, nvcr_io" in row["detail"]
    assert row["hint"] == "osmo credential set hf-token --type GENERIC --payload token=$HF_TOKEN"


def test_preflight_osmo_credential_without_token_key(capsys, clean_hf, monkeypatch, osmo_stub):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    osmo_stub({"credential list": (0, (FIXTURES / "credential_list_keys_no_token.json").read_text(), "")})
    code, _, report = both_formats(capsys)
    assert code == 1
    assert "lacks key(s) token" in rows(report)["OSMO credential hf-token"]["detail"]


def test_preflight_osmo_not_logged_in_is_environment_problem(capsys, clean_hf, monkeypatch, osmo_stub):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    osmo_stub({"credential list": (1, "", "Error: 401 Unauthorized, please login\n")})
    code, _, report = both_formats(capsys)
    assert code == 4
    row = rows(report)["OSMO credential hf-token"]
    assert row["status"] == "error" and "HTTP 401" in row["detail"] and "osmo login" in row["hint"]
