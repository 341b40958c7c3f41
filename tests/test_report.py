"""`audioae-eval RUN... DATA --report DIR`: the listening report, as files and as a person sees it
in a real browser (headless Chromium: `make test` installs Debian's package when it runs as root;
the browser tests skip without it)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioae.cli.eval import main
from audioae.report import file_key, labels
from conftest import run_cli

# (relative path, sample rate, channels, seconds); the smoke model is 16 kHz stereo
FILES = [("speech/a.wav", 16000, 1, 0.5), ("music/b.flac", 22050, 2, 0.4)]
RUNS = ["run", "run_step_00000002"]  # the run folder and its checkpoint: two models
PICTURES = 1 + 2 * len(RUNS)  # per file: the reference, each run's spectrogram and difference
WIDTH = 480  # audioae.report.spectra.draw: 4.8 in at 100 dpi


def browser() -> str:
    found = next(filter(None, map(shutil.which, ["chromium", "chromium-browser"])), None)
    if found is None:
        pytest.skip(
            "chromium is not installed (Debian: apt-get install chromium; `make test` installs "
            "it when run as root): the report's browser checks need it"
        )
    return found


def chromium(page: Path, fragment: str = "", *, screenshot: Path | None = None) -> str:
    """The DOM after the page's scripts ran and its images and audio loaded (virtual time)."""
    profile = page.parent.parent / f"profile{abs(hash(fragment))}"
    what = [f"--screenshot={screenshot}", "--window-size=1400,1800"] if screenshot else []
    proc = subprocess.run(
        [
            browser(),
            "--headless",
            "--no-sandbox",  # root in CI
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            *(what or ["--dump-dom"]),
            page.as_uri() + fragment,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


class Node:
    def __init__(self, tag: str, attrs: dict):
        self.tag, self.attrs, self.children, self.text = tag, attrs, [], ""

    def all(self, tag: str, cls: str | None = None) -> list[Node]:
        found = []
        for c in self.children:
            if c.tag == tag and (cls is None or cls in c.attrs.get("class", "").split()):
                found.append(c)
            found += c.all(tag, cls)
        return found

    def find(self, tag: str, **attrs) -> Node:
        return next(n for n in self.all(tag) if all(n.attrs.get(k) == v for k, v in attrs.items()))

    def content(self) -> str:
        return self.text + "".join(c.content() for c in self.children)


class Tree(HTMLParser):
    VOID = frozenset({"meta", "link", "img", "input", "br", "hr"})

    def __init__(self, text: str):
        super().__init__()
        self.root = Node("#root", {})
        self.stack = [self.root]
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag):
        while len(self.stack) > 1 and self.stack.pop().tag != tag:
            pass

    def handle_data(self, data):
        self.stack[-1].text += data


def dom(text: str) -> Node:
    return Tree(text).root


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Two smoke steps; two models (the run and its checkpoint) evaluated with a report."""
    tmp = tmp_path_factory.mktemp("report")
    run_cli(
        "audioae-train", "experiment=smoke", "trainer.max_steps=2", f"hydra.run.dir={tmp / 'run'}",
        cwd=tmp,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for name, rate, channels, seconds in FILES:
        path = tmp / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(round(rate * seconds))[:, None] / rate
        noise = 0.02 * rng.standard_normal((len(t), channels))
        sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * t) + noise, rate)
    models = [str(tmp / "run"), str(tmp / "run" / "checkpoints" / "step_00000002")]
    common = ["--no-visqol", "--chunk-size", "0"]
    outputs = ["--report", "rep", "--out", "ev"]
    run_cli("audioae-eval", *models, str(tmp / "data"), *outputs, *common, cwd=tmp)
    return tmp


def results(tmp: Path) -> list[dict]:
    return [json.loads((tmp / "ev" / name / "results.json").read_text()) for name in RUNS]


@pytest.mark.slow
def test_every_model_has_its_results_and_the_report_its_files(report):
    page = (report / "rep" / "index.html").read_text()
    assert (report / "rep" / "report.js").is_file() and (report / "rep" / "report.css").is_file()
    for r in results(report):
        assert sorted(f["file"] for f in r["files"]) == sorted(n for n, *_ in FILES)
    for name, rate, channels, seconds in FILES:
        folder = report / "rep" / "audio" / file_key(name)
        original, _ = sf.read(report / "data" / name, always_2d=True)
        ref, ref_rate = sf.read(folder / "reference.flac", always_2d=True)
        # the reference is the input at the model's 16 kHz stereo (read back within 24 bits)
        assert ref_rate == 16000 and ref.shape == (round(seconds * 16000), 2)
        if rate == 16000:
            assert np.abs(ref - np.repeat(original, 2 // channels, 1)).max() < 1e-6
        for src in ["reference", "lowpass4k", "lowpass8k", "run1", "run2"]:
            assert f"audio/{file_key(name)}/{src}.flac" in page
            data, audio_rate = sf.read(folder / f"{src}.flac", always_2d=True)
            assert audio_rate == 16000 and data.shape == ref.shape
        assert not (folder / "identity.flac").exists()  # identity is the reference
        # the same weights twice: the same reconstruction
        assert np.array_equal(sf.read(folder / "run1.flac")[0], sf.read(folder / "run2.flac")[0])


@pytest.mark.slow
def test_the_page_renders_with_its_players_pictures_and_numbers(report):
    page = report / "rep" / "index.html"
    shot = report / "report.png"
    chromium(page, screenshot=shot)
    print(f"screenshot: {shot}")
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">I", head[16:20])[0] == 1400

    root = dom(chromium(page))
    body = root.find("body")
    assert body.attrs["data-images"] == f"{PICTURES * len(FILES)}/{PICTURES * len(FILES)}"
    assert {img.attrs["data-natural-width"] for img in root.all("img")} == {str(WIDTH)}
    players = root.find("main").all("audio")
    assert len(players) == len(FILES) * (3 + len(RUNS))  # reference, 2 low-passes, each run
    seconds = {file_key(n): s for n, _, _, s in FILES}
    for audio in players:
        assert "data-error" not in audio.attrs, audio.attrs
        key = audio.attrs["src"].split("/")[1]
        assert float(audio.attrs["data-duration"]) == pytest.approx(seconds[key], abs=1e-3)

    # the means table: each run's and each condition's numbers, as results.json has them
    first, *_ = runs = results(report)
    table = root.find("table", id="summary")
    scopes = {"overall": [r["means"]["overall"] for r in runs]}
    scopes |= {f: [r["means"]["folders"][f] for r in runs] for f in ("music", "speech")}
    for tbody in table.all("tbody"):
        means = scopes.pop(tbody.attrs["data-scope"])
        for tr in tbody.all("tr"):
            system = tr.all("th")[0].content()
            values = means[RUNS.index(system)]["model"] if system in RUNS else means[0][system]
            cells = {td.attrs["data-key"]: td for td in tr.all("td") if "data-key" in td.attrs}
            assert set(cells) == {"si_sdr", "mel", "stft"}
            for key, td in cells.items():
                assert float(td.attrs["data-value"]) == values[key]
                assert td.content() == f"{values[key]:.2f}"
    assert not scopes
    # and every file's table
    for section in root.all("section", "file"):
        entry = next(f for f in first["files"] if f["file"] == section.attrs["data-file"])
        rows = section.find("table").all("tbody")[0].all("tr")
        systems = [tr.all("th")[0].content() for tr in rows]
        assert systems == [*RUNS, "identity", "lowpass4k", "lowpass8k"]
        for tr in rows:
            system = tr.all("th")[0].content()
            values = entry["model"] if system in RUNS else entry[system]
            for td in tr.all("td"):
                assert float(td.attrs["data-value"]) == values[td.attrs["data-key"]]


def column(tbody: Node, key: str) -> list[float]:
    return [
        float(td.attrs["data-value"]) for td in tbody.all("td") if td.attrs.get("data-key") == key
    ]


@pytest.mark.slow
@pytest.mark.parametrize("fragment", ["#sort=mel", "#sort=-si_sdr"])
def test_the_means_sort_by_any_metric(report, fragment):
    key = fragment.removeprefix("#sort=").lstrip("-")
    descending = "-" in fragment
    root = dom(chromium(report / "rep" / "index.html", fragment))
    assert root.find("body").attrs["data-sort"] == f"{key}:{'desc' if descending else 'asc'}"
    for tbody in root.find("table", id="summary").all("tbody"):
        values = column(tbody, key)
        assert len(values) == len(RUNS) + 3
        assert values == sorted(values, reverse=descending)


def ab_orders(root: Node) -> list[list[str]]:
    """Per file, the run files of the A, B, ... players in their shown order."""
    return [
        [
            fig.all("audio")[0].attrs["src"].rsplit("/", 1)[1]
            for fig in block.all("figure", "ab-choice")
        ]
        for block in root.find("section", id="ab").all("div", "ab-file")
    ]


@pytest.mark.slow
def test_blind_ab_shuffles_hides_the_labels_and_reveals_them(report):
    page = report / "rep" / "index.html"
    root = dom(chromium(page, "#ab&seed=7"))
    assert root.find("body").attrs["data-mode"] == "ab"
    assert (
        "hidden" in root.find("main").attrs and "hidden" not in root.find("section", id="ab").attrs
    )
    orders = ab_orders(root)
    assert len(orders) == len(FILES)
    assert all(sorted(o) == ["run1.flac", "run2.flac"] for o in orders)
    labels_ = root.find("section", id="ab").all("span", "ab-label")
    assert labels_ and all("hidden" in s.attrs for s in labels_)
    assert ab_orders(dom(chromium(page, "#ab&seed=7"))) == orders  # seeded: reproducible
    assert (
        len({str(ab_orders(dom(chromium(page, f"#ab&seed={s}")))) for s in (1, 2)} | {str(orders)})
        > 1
    )

    revealed = dom(chromium(page, "#ab&seed=7&reveal"))
    assert revealed.find("body").attrs["data-revealed"] == "1"
    for fig in revealed.find("section", id="ab").all("figure", "ab-choice"):
        label = fig.all("span", "ab-label")[0]
        assert "hidden" not in label.attrs
        run = int(fig.all("audio")[0].attrs["src"].rsplit("run", 1)[1].split(".")[0])
        assert label.content() == RUNS[run - 1]
    assert "Order seed 7" in revealed.find("div", id="ab-result").content()


def fails(capsys, *argv: str) -> str:
    """The one-line error (exit status 2) of audioae-eval ARGV, run in this process."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("audioae-eval: ") and "Traceback" not in err and "\n" not in err, err
    return err


@pytest.mark.slow
def test_an_existing_report_is_kept_and_bad_input_is_one_line(report, tmp_path, capsys):
    run, data = str(report / "run"), str(report / "data")
    page = report / "rep" / "index.html"
    before = page.stat().st_mtime_ns
    out = ["--out", str(tmp_path / "ev")]
    err = fails(capsys, run, data, "--report", str(page.parent), *out)
    assert err == f"audioae-eval: {page} exists; --force overwrites"
    assert page.stat().st_mtime_ns == before and not (tmp_path / "ev").exists()
    assert "no audio inputs after the model(s)" in fails(
        capsys, run, f"{run}/checkpoints/step_00000002"
    )
    (tmp_path / "file").write_text("")
    assert "is not a folder" in fails(capsys, run, data, "--report", str(tmp_path / "file" / "r"))
    bad = [("--max-files", "0", "0: must be more"), ("--seconds", "x", "'x' is not")]
    for option, value, error in bad:
        with pytest.raises(SystemExit) as exit_info:  # argparse: usage, then the error line
            main([run, data, option, value])
        assert exit_info.value.code == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last.startswith(f"audioae-eval: error: argument {option}: {error}"), last


@pytest.mark.slow
def test_one_model_limited_to_a_file_and_its_start(report, tmp_path):
    """One run: A/B between the reference and the reconstruction; --max-files, --seconds."""
    main([
        str(report / "run"), str(report / "data"), "--report", str(tmp_path / "r"),
        "--out", str(tmp_path / "ev"), "--no-visqol", "--max-files", "1", "--seconds", "0.25",
    ])  # fmt: skip
    result = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert [f["file"] for f in result["files"]] == ["music/b.flac"]  # the first in name order
    assert result["files"][0]["seconds"] == pytest.approx(0.25, abs=1 / 16000)
    assert (result["max_files"], result["seconds_per_file"]) == (1, 0.25)
    audio, _ = sf.read(tmp_path / "r" / "audio" / file_key("music/b.flac") / "run1.flac")
    assert len(audio) == round(result["files"][0]["seconds"] * 16000)
    orders = ab_orders(dom(chromium(tmp_path / "r" / "index.html", "#ab&seed=1")))
    assert [sorted(o) for o in orders] == [["reference.flac", "run1.flac"]]


def test_labels_and_file_keys_are_distinct(tmp_path):
    for name in ["a/run", "b/run", "c/run"]:
        (tmp_path / name).mkdir(parents=True)
    names = labels([str(tmp_path / n) for n in ["a/run", "b/run", "c/run"]])
    assert names == ["run", "run-2", "run-3"]
    assert file_key("a/b.wav") != file_key("a_b.wav")
    assert file_key("music/x y.wav").startswith("music_x_y.wav-")
