"""The `alignlab` command line, called in-process through `cli.main(argv)`."""
from __future__ import annotations

import re

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


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        cli.main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command, actions", [("zoo", ["list", "build", "clean"]),
                                              ("quiz", ["build", "progress", "clear-outputs"]), ("lab", ["check"])])
def test_every_action_says_what_it_does_and_shows_an_example(capsys, command, actions):
    listed = _help([command], capsys).split("positional arguments:")[1].split("options:")[0]
    for action in actions:
        assert re.search(rf"^ {{4}}{re.escape(action)}\s+\w+ \w+ \w+", listed, re.M), (action, listed)
        own = _help([command, action], capsys)
        assert f"usage: alignlab {command} {action}" in own and f"\n  alignlab {command} {action}" in own
        assert re.search(r"^examples?:$", own, re.M)


def test_profile_help_says_where_the_default_comes_from(capsys):
    active = "$ALIGNLAB_PROFILE if set, else gpu when CUDA is available, else cpu"
    assert active in " ".join(_help(["zoo", "build"], capsys).split())
    assert active in " ".join(_help(["info"], capsys).split())
    assert "(default: every profile's)" in " ".join(_help(["zoo", "clean"], capsys).split())  # what zoo.clean(None) does
    assert "(default: every profile's;" in " ".join(_help(["zoo", "list"], capsys).split())


@pytest.mark.parametrize("argv, message", [
    (["quiz", "progress", "foo"], "alignlab quiz progress: error: unrecognized arguments: foo"),
    (["quiz", "progress", "--check"], "unrecognized arguments: --check"),
    (["quiz", "clear-outputs"], "alignlab quiz clear-outputs: error: the following arguments are required: NB"),
    (["lab", "check"], "the following arguments are required: NB"),
    (["zoo", "list", "--yes"], "alignlab zoo list: error: unrecognized arguments: --yes"),
    (["zoo", "build", "sft", "--profile", "ci", "--bogus"], "unrecognized arguments: --bogus"),
    (["zoo"], "the following arguments are required: ACTION")])
def test_wrong_arguments_exit_2_with_a_message(alignlab_home, capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_the_command_lines_in_use_still_work(alignlab_home, monkeypatch):
    """The Makefile's, the docs' and the old forms: names after an option, --profile before the action."""
    from alignlab.quiz import author
    built, cleared, checked = [], [], []
    monkeypatch.setattr(zoo, "get", lambda name, profile=None: built.append((name, profile)) or
                        zoo.Entry(name, str(profile), alignlab_home))
    monkeypatch.setattr(author, "clear_quiz_outputs", lambda path: cleared.append(path.name) or 0)
    monkeypatch.setattr(author, "build_all", lambda source, check=False: checked.append(check) or [])
    assert cli.main(["zoo", "build", "--profile", "ci"]) == 0
    assert built == [(n, "ci") for n in zoo.names("ci")]
    for argv in (["zoo", "build", "--profile", "ci", "sft", "rm"], ["zoo", "build", "sft", "--profile", "ci", "rm"],
                 ["zoo", "--profile", "ci", "build", "sft", "rm"]):
        built.clear()
        assert cli.main(argv) == 0 and built == [("sft", "ci"), ("rm", "ci")], argv
    assert cli.main(["quiz", "clear-outputs", "a.ipynb", "b.ipynb"]) == 0 and cleared == ["a.ipynb", "b.ipynb"]
    assert cli.main(["quiz", "build", "--check"]) == 0 and checked == [True]


def test_quiz_progress_recover_is_passed_on(alignlab_home, monkeypatch):
    import alignlab.quiz
    calls = []
    monkeypatch.setattr(alignlab.quiz, "progress", lambda **kw: calls.append(kw))
    assert cli.main(["quiz", "progress"]) == 0 and cli.main(["quiz", "progress", "--recover"]) == 0
    assert calls == [{}, {"recover": True}]


LONG = "toy_with_a_name_longer_than_the_old_column"


def _toy(job: zoo.Job) -> dict:
    (job.out / "weights.bin").write_bytes(b"w" * 20_000)
    return {}


@pytest.fixture
def set_aside(alignlab_home):
    """Two intact toy entries (one with a long name), and a damaged copy of each kind the zoo sets
    aside: an entry folder and a cached run. Yields (entries, set-aside copies)."""
    for name in ("toy", LONG):
        zoo.register(zoo.Recipe(name, _toy))
    try:
        entries = [zoo.get(n, "ci") for n in ("toy", LONG)]
        (entries[1].path / zoo.MANIFEST).unlink()
        zoo.get(LONG, "ci")  # sets the damaged folder aside, rebuilds it
        zoo.cached_run("exp", {}, lambda: {"x": 1}, "ci")
        (run,) = (alignlab_home / "runs" / "ci").glob("exp-*.json")
        run.write_text("{broken")
        zoo.cached_run("exp", {}, lambda: {"x": 1}, "ci")
        aside = [*entries[1].path.parent.glob("*.corrupt-*"), *run.parent.glob("*.corrupt-*")]
        assert len(aside) == 2
        yield entries, aside
    finally:
        for name in ("toy", LONG):
            del zoo.registry()[name]


def test_list_shows_set_aside_copies_apart_in_aligned_columns(set_aside, capsys):
    entries, aside = set_aside
    capsys.readouterr()
    assert cli.main(["zoo", "list"]) == 0
    intact, _, apart = capsys.readouterr().out.partition("set aside as corrupt")
    assert "2 entries" in intact and ".corrupt-" not in intact
    rows = [line for line in intact.splitlines() if line.endswith(" ok")]
    assert len(rows) == 2 and len({line.index(" MB") for line in rows}) == 1  # one column, however long the name
    assert all(f"{p.name} " in apart for p in aside) and "0.02 MB" in apart  # each copy with its size


def test_clean_corrupt_removes_only_the_set_aside_copies(set_aside, capsys):
    entries, aside = set_aside
    assert cli.main(["zoo", "clean", "--corrupt"]) == 2 and "--yes" in capsys.readouterr().err
    assert all(p.exists() for p in aside)  # nothing deleted without --yes
    assert cli.main(["zoo", "clean", "--corrupt", "--yes"]) == 0
    assert "removed 2 copies" in capsys.readouterr().out and not any(p.exists() for p in aside)
    assert [r["state"] for r in zoo.entries()] == ["ok", "ok"] and all(zoo.verify(e.path) is None for e in entries)
    assert zoo.cached_run("exp", {}, lambda: {"x": 2}, "ci") == {"x": 1}  # the intact cached run stays
    assert zoo.set_aside_copies() == []
