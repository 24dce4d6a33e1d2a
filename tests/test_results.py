"""Headline numbers: this run's saved where the book's are not touched, shown beside the book's."""
import json

import pytest

from alignlab import results


@pytest.fixture
def folders(tmp_path, monkeypatch):
    run, book = tmp_path / "run", tmp_path / "book"
    monkeypatch.setenv(results.RESULTS_ENV, str(run))
    monkeypatch.setattr(results, "book_dir", lambda: book)
    return run, book


def test_record_and_load_round_trip(folders):
    run, _ = folders
    out = results.record("03", {"gain": (0.16, 0.033, 960), "kl": (1.38, None, None)}, "ci")
    assert out == run / "ci" / "03.json"
    assert results.load("03", "ci", run) == {"gain": (0.16, 0.033, 960), "kl": (1.38, None, None)}
    assert results.load("04", "ci", run) is None


def test_headline_shows_this_run_beside_the_books_and_never_writes_the_books(folders):
    run, book = folders
    results.record("03", {"gain": (0.16, 0.033, 960)}, "cpu", folder=book)
    before = (book / "cpu" / "03.json").read_text()
    table = results.headline("03", {"gain": (0.05, 0.1, 96), "new": (1.0, None, None)}, profile="ci")
    head, gain, new = table.splitlines()
    assert "this run (ci)" in head and "the book (cpu)" in head
    assert "0.050 ± 0.100 (n = 96)" in gain and "0.160 ± 0.033 (n = 960)" in gain
    assert new.rstrip().endswith("—")                      # the book has no such number
    assert (book / "cpu" / "03.json").read_text() == before and (run / "ci" / "03.json").exists()


def test_a_damaged_results_file_names_itself(folders):
    _, book = folders
    (book / "cpu").mkdir(parents=True)
    (book / "cpu" / "02.json").write_text('{"format": "alignlab-results/1", "numbers": ')
    with pytest.raises(ValueError, match=r"02.json \(chapter 02, profile cpu\) is not a readable results file"):
        results.load("02")
    (book / "cpu" / "02.json").write_text(json.dumps({"format": "other", "numbers": {}}))
    with pytest.raises(ValueError, match="make book-outputs"):
        results.load("02")


def test_a_number_that_is_not_finite_is_refused(folders):
    with pytest.raises(ValueError, match="'gain' is not a finite number"):
        results.record("03", {"gain": (float("nan"), None, None)}, "ci")
