"""experiments/report.py: the committed generated blocks equal what the command writes, and the
command fills, checks and names stale blocks."""
import pytest

from experiments import report
from experiments.report import END, Block, begin


def test_committed_generated_blocks_equal_the_commands_output():
    stale = report.regenerate(report.ROOT, report.BLOCKS)
    assert stale == {}, f"stale generated blocks in {sorted(stale)}: run python -m experiments.report"


def test_every_block_sits_between_its_markers_in_its_file():
    for name, block in report.BLOCKS.items():
        text = (report.ROOT / block.path).read_text()
        assert text.count(begin(name)) == 1 and text.index(begin(name)) < text.index(END)


def test_fill_replaces_only_the_text_between_the_markers():
    text = f"# Title\nprose\n{begin('t')}\nold table\nmore old\n{END}\nafter\n"
    assert report.fill(text, "t", "| a |\n") == f"# Title\nprose\n{begin('t')}\n| a |\n{END}\nafter\n"
    assert report.fill(f"{begin('t')}\n{END}\n", "t", "x") == f"{begin('t')}\nx\n{END}\n"


def test_fill_refuses_a_file_without_exactly_one_block():
    with pytest.raises(ValueError, match="expected one line"):
        report.fill("no markers\n", "t", "x")
    with pytest.raises(ValueError, match="expected one line"):
        report.fill(f"{begin('t')}\n{END}\n{begin('t')}\n{END}\n", "t", "x")
    with pytest.raises(ValueError, match="no closing"):
        report.fill(f"{begin('t')}\nopen\n", "t", "x")


def test_check_exits_1_naming_the_stale_file_and_a_rewrite_makes_it_current(tmp_path, monkeypatch, capsys):
    (tmp_path / "doc.md").write_text(f"intro\n{begin('figures')}\n| 1 |\n{END}\n")
    (tmp_path / "other.md").write_text(f"{begin('same')}\nkept\n{END}\n")
    monkeypatch.setattr(report, "ROOT", tmp_path)
    monkeypatch.setattr(report, "BLOCKS", {"figures": Block("doc.md", lambda: "| 2 |"),
                                           "same": Block("other.md", lambda: "kept")})
    assert report.main(["--check"]) == 1
    assert capsys.readouterr().out == "stale: doc.md (run python -m experiments.report)\n"
    assert (tmp_path / "doc.md").read_text() == f"intro\n{begin('figures')}\n| 1 |\n{END}\n"  # --check writes nothing
    assert report.main([]) == 0
    assert capsys.readouterr().out == "wrote doc.md\n"
    assert (tmp_path / "doc.md").read_text() == f"intro\n{begin('figures')}\n| 2 |\n{END}\n"
    assert report.main(["--check"]) == 0


def test_a_missing_marker_is_an_error_naming_the_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "doc.md").write_text("no block here\n")
    monkeypatch.setattr(report, "ROOT", tmp_path)
    monkeypatch.setattr(report, "BLOCKS", {"figures": Block("doc.md", lambda: "x")})
    assert report.main(["--check"]) == 2
    assert capsys.readouterr().err.startswith("error: doc.md: expected one line")
