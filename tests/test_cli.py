"""The `alignlab` command line, called in-process through `cli.main(argv)`."""
from __future__ import annotations

import pytest

from alignlab import cli, zoo


@pytest.fixture(autouse=True)
def _restore_profile_env(monkeypatch):
    # `zoo --profile P` sets ALIGNLAB_PROFILE in the process; undo it after each test.
    monkeypatch.setenv("ALIGNLAB_PROFILE", "ci")


def test_info_prints_the_profile_and_cache(alignlab_home, capsys):
    assert cli.main(["info", "--profile", "ci"]) == 0
    out = capsys.readouterr().out
    assert "alignlab " in out and "profile: ci" in out and f"cache: {alignlab_home}" in out


def test_list(alignlab_home, tiny_profile, capsys):
    assert cli.main(["zoo", "list"]) == 0
    assert "0 entries" in capsys.readouterr().out
    entry = zoo.get("tokenizer", tiny_profile)
    capsys.readouterr()
    assert cli.main(["zoo", "list", "--profile", "ci"]) == 0
    out = capsys.readouterr().out
    assert entry.path.name in out and " ok" in out and "1 entries" in out


def test_clean_needs_confirmation(alignlab_home, tiny_profile, capsys):
    entry = zoo.get("tokenizer", tiny_profile)
    assert cli.main(["zoo", "clean"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert entry.path.exists() and zoo.verify(entry.path) is None  # nothing deleted
    assert cli.main(["zoo", "clean", "--yes"]) == 0 and not entry.path.exists() and not zoo.entries()


def test_list_all_names_every_entry_with_its_chapter(alignlab_home, capsys):
    assert cli.main(["zoo", "list", "--all", "--profile", "ci"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0].removesuffix("@…"): line.split()[1:3] for line in lines[1:-2]}
    assert list(rows) == list(zoo.registry())  # every registrable name, in the chapters' order
    assert "sft@…" in lines[3] and "tokenizer " in lines[1] and "NAME@small" in lines[-1]  # which ones are sized
    assert rows["sft"] == ["01_sft_as_kl", "yes"] and rows["ppo_beta0.02"] == ["03_ppo_kl", "yes"]
    assert rows["ppo_beta0.01"] == ["03_ppo_kl", "no"] and rows["kto"] == ["04_dpo", "yes"]  # gpu's β, not ci's
    assert [n for n, (_, built) in rows.items() if built == "yes"] == zoo.names("ci")
    assert not (alignlab_home / "zoo").exists()  # listing builds nothing


@pytest.mark.parametrize("argv", [["zoo", "build", "nonexistent", "--profile", "ci"],
                                  ["zoo", "build", "--profile", "ci", "nonexistent"]])
def test_unknown_entry_is_a_clear_error(alignlab_home, capsys, argv):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "No zoo entry named 'nonexistent'" in err and "'sft'" in err and "Traceback" not in err
    assert not (alignlab_home / "zoo" / "ci").exists() or not any((alignlab_home / "zoo" / "ci").iterdir())


def test_bad_arguments_exit_with_usage(alignlab_home, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["zoo", "frobnicate"])
    assert stop.value.code == 2 and "invalid choice" in capsys.readouterr().err
