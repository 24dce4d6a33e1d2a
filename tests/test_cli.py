"""The `alignlab` command line."""
from __future__ import annotations

from alignlab import cli, zoo


def test_info_and_list(alignlab_home, capsys):
    assert cli.main(["info", "--profile", "ci"]) == 0
    assert "profile: ci" in capsys.readouterr().out
    assert cli.main(["zoo", "list"]) == 0
    assert "0 entries" in capsys.readouterr().out


def test_clean_needs_confirmation(alignlab_home, tiny_profile, capsys):
    zoo.get("tokenizer", tiny_profile)
    assert cli.main(["zoo", "clean"]) == 2
    assert zoo.entries() and "--yes" in capsys.readouterr().err
    assert cli.main(["zoo", "clean", "--yes"]) == 0 and not zoo.entries()


def test_unknown_entry_is_a_clear_error(alignlab_home, capsys):
    assert cli.main(["zoo", "build", "--profile", "ci", "nonexistent"]) == 2
    assert "No zoo entry named 'nonexistent'" in capsys.readouterr().err
