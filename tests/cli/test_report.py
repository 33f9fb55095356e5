import re

from PIL import Image
from typer.testing import CliRunner

from raycells.cli.main import app

runner = CliRunner()


def test_report_writes_every_format_and_compares_with_the_paper(tmp_path, prediction_run):
    fold = [("MOB", [0.7, 0.2, 0.1]), ("MYO", [0.1, 0.8, 0.1]), ("NGS", [0.1, 0.1, 0.8]), ("NGS", [0.2, 0.1, 0.7])]
    run = prediction_run(tmp_path, {0: fold, 1: fold}, total=3, paper=True)
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    report = run / "report"
    for name in ("report.md", "report.html", "metrics.json", "per_class.csv", "confusion_counts.png",
                 "confusion_normalised.png", "per_class.png", "roc_blast.png", "roc_atypical.png"):
        assert (report / name).is_file(), name
    expected = {"confusion_counts.png": (500, 500), "confusion_normalised.png": (500, 500),
                "per_class.png": (600, 400), "roc_blast.png": (500, 500), "roc_atypical.png": (500, 500)}
    for name, size in expected.items():
        with Image.open(report / name) as image:
            assert image.format == "PNG" and image.size == size, name
        svg, pdf = (report / name).with_suffix(".svg"), (report / name).with_suffix(".pdf")
        assert svg.read_text().lstrip().startswith("<?xml") and pdf.read_bytes()[:5] == b"%PDF-"
    per_class = (report / "per_class.csv").read_text().splitlines()
    assert per_class[0].startswith("class,precision_mean,precision_std") and len(per_class) == 4
    markdown = (report / "report.md").read_text()
    for code in ("MOB", "MYO", "NGS"):
        assert f"| {code} |" in markdown
    assert "missing folds: 2" in markdown and "Against Matek et al. 2019" in markdown
    assert "data:image/png;base64," in (report / "report.html").read_text()


def test_report_of_a_folder_that_is_not_a_run(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "config.json" in result.output


def test_two_runs_on_one_fold_plan_are_compared_and_paired(tmp_path, prediction_run):
    good = [("MOB", [0.7, 0.2, 0.1]), ("MYO", [0.1, 0.8, 0.1]), ("NGS", [0.1, 0.1, 0.8])]
    worse = [("MOB", [0.2, 0.7, 0.1]), ("MYO", [0.1, 0.8, 0.1]), ("NGS", [0.1, 0.1, 0.8])]
    a = prediction_run(tmp_path / "a", {0: good, 1: good, 2: worse})
    b = prediction_run(tmp_path / "b", {0: worse, 1: worse, 2: worse})
    result = runner.invoke(app, ["report", str(a), str(b)])
    assert result.exit_code == 0, result.output
    text = (a / "report" / "comparison.md").read_text()
    assert "Nadeau-Bengio corrected resampled t-test" in text and "| accuracy |" in text
    assert (b / "report" / "report.md").is_file()


def test_the_report_of_a_trained_run_opens_with_how_it_was_made_and_its_curves(aml_run, tmp_path):
    import shutil

    run = tmp_path / "aml"
    shutil.copytree(aml_run, run)
    result = runner.invoke(app, ["report", str(run)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "moved or copied from" in result.output  # its MLflow record's artifacts stay put
    markdown = (run / "report" / "report.md").read_text()
    block = markdown.split("## Run", 1)[1].split("\n## ", 1)[0]
    for field in ("| dataset |", "| model | tiny_cnn |", "| image size | 32 |", "| epochs | 1 |",
                  "| seed | 0 |", "| raycells | 0.1.0, git ", "| hardware | CPU (fp32) |",
                  "fingerprint ", "| wall time |"):
        assert field in block, (field, block)
    assert markdown.index("## Run") < markdown.index("## Overall")
    # In the page, text is aligned left and numbers right; the Run block has no empty header row.
    page = (run / "report" / "report.html").read_text()
    run_block = page.split("<h2>Run</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<th" not in run_block and "<td class=''>tiny_cnn</td>" in run_block
    assert re.search(r"<td class='n'>\d\.\d{3} ± \d\.\d{3}</td>", page)
    with Image.open(run / "report" / "training_curves.png") as image:
        assert image.size == (900, 380)
    assert "training_curves.png" in markdown


def _chromium() -> str | None:
    import shutil

    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def test_the_report_page_in_a_real_browser(tmp_path, prediction_run):
    """report.html as Chromium (headless) builds it: the SYNTHETIC banner first on demo data, a
    link to examples.html when it exists, the per-fold table, every picture decoded."""
    import json
    import subprocess
    from html.parser import HTMLParser

    browser = _chromium()
    if browser is None:
        import pytest

        pytest.skip("no Chromium: install the system's package (Debian/Ubuntu: apt-get install "
                    "chromium); .ci/run does")
    fold = [("MOB", [0.7, 0.2, 0.1]), ("MYO", [0.1, 0.8, 0.1]), ("NGS", [0.1, 0.1, 0.8])]
    run = prediction_run(tmp_path, {0: fold, 1: fold})
    config = json.loads((run / "config.json").read_text())
    config["data"]["synthetic"] = True
    (run / "config.json").write_text(json.dumps(config))
    (run / "report").mkdir()
    (run / "report" / "examples.html").write_text("<html></html>")
    assert runner.invoke(app, ["report", str(run)]).exit_code == 0
    page = (run / "report" / "report.html").as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page], capture_output=True, text=True,
                         timeout=120).stdout

    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.order, self.headings, self.images, self.links, self._in = [], [], [], [], None

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            self.order.append(attrs.get("id") or tag)
            self._in = tag
            if tag == "img":
                self.images.append(attrs["src"][:22])
            if tag == "a":
                self.links.append(attrs["href"])

        def handle_data(self, data):
            if self._in == "h2" and data.strip():
                self.headings.append(data.strip())

        def handle_endtag(self, tag):
            self._in = None

    parsed = Page()
    parsed.feed(dom)
    body = parsed.order[parsed.order.index("body") + 1:]
    assert body[:2] == ["synthetic", "h1"]  # the banner before anything else
    assert parsed.links == ["examples.html"]
    assert parsed.headings[:4] == ["Run", "Overall", "Test folds", "Per class"]
    assert parsed.images == ["data:image/png;base64,"] * 5  # confusion x2, per class, ROC x2
    shot = tmp_path / "page.png"
    subprocess.run([browser, *flags, "--window-size=1000,1400", f"--screenshot={shot}", page],
                   capture_output=True, timeout=120)
    with Image.open(shot) as image:
        top = image.convert("RGB").crop((0, 0, 1000, 60))
        red = sum(1 for r, g, b in top.get_flattened_data() if r > 150 and g < 60 and b < 60)
    assert red > 1000  # the banner is drawn, in its colour, at the top
