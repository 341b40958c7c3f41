"""index.html of the listening report, with report.js and report.css copied beside it.

The page is written whole here (tables, players, pictures); report.js adds what needs a browser:
sorting the means table by a click on a metric (or `#sort=KEY` / `#sort=-KEY` in the address,
ascending / descending), and the blind A/B mode (`#ab`, `&seed=N`, `&reveal`), which it builds
from the JSON the page embeds. Every number in a table cell carries its full value in
`data-value`, the one results.json holds.
"""

from __future__ import annotations

import html
import json
import math
import shutil
from pathlib import Path

import soundfile as sf

from audioae.errors import AudioAEError
from audioae.evaluate import HEADERS
from audioae.files import write_text
from audioae.report import PAGE, audio_name, file_key
from audioae.report.spectra import draw_file

ASSETS = ("report.js", "report.css")
HIGHER_IS_BETTER = {"si_sdr": True, "mel": False, "stft": False, "visqol": True}


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def cell(value: float | None, key: str) -> str:
    if value is None or not math.isfinite(value):
        return f'<td class="num" data-key="{key}" data-value="">–</td>'
    return f'<td class="num" data-key="{key}" data-value="{value!r}">{value:.2f}</td>'


def metric_header(names: list[str], sortable: bool) -> str:
    cells = []
    for k in names:
        better = "higher" if HIGHER_IS_BETTER[k] else "lower"
        attrs = f' data-key="{k}" data-higher="{int(HIGHER_IS_BETTER[k])}"' if sortable else ""
        cells.append(f'<th class="num"{attrs} title="{better} is better">{esc(HEADERS[k])}</th>')
    return "".join(cells)


def rows(systems: list[tuple[str, str, dict]], names: list[str], lead: str = "") -> str:
    """One <tr> per (label, css class, metrics); `lead` cells come first in each."""
    return "".join(
        f'<tr class="{cls}">{lead}<th scope="row">{esc(label)}</th>'
        + "".join(cell(values.get(k), k) for k in names)
        + "</tr>"
        for label, cls, values in systems
    )


def summary_table(results: list[dict], names: list[str], runs: list[str]) -> str:
    """Means overall and per folder: each run's, then the reference conditions', one <tbody>
    per scope, so that sorting ranks the systems within each."""
    conditions = [c for c in results[0]["conditions"] if c != "model"]
    scopes = [("overall", results[0]["means"]["overall"])]
    scopes += list(results[0]["means"]["folders"].items())
    bodies = []
    for name, agg in scopes:
        systems = [(label, "run", _scope(r, name)["model"]) for label, r in zip(runs, results)]
        systems += [(c, "cond", agg[c]) for c in conditions]
        lead = f'<td class="scope">{esc(name)}</td><td class="num">{agg["files"]}</td>'
        bodies.append(f'<tbody data-scope="{esc(name)}">{rows(systems, names, lead)}</tbody>')
    head = (
        '<thead><tr><th>scope</th><th class="num">files</th><th>system</th>'
        + metric_header(names, sortable=True)
        + "</tr></thead>"
    )
    return f'<table id="summary" class="metrics">{head}{"".join(bodies)}</table>'


def _scope(result: dict, name: str) -> dict:
    return result["means"]["overall"] if name == "overall" else result["means"]["folders"][name]


def player(caption: str, src: str, cls: str) -> str:
    return (
        f'<figure class="player {cls}"><figcaption>{esc(caption)}</figcaption>'
        f'<audio controls preload="metadata" src="{esc(src)}"></audio></figure>'
    )


def picture(src: str, caption: str) -> str:
    return (
        f'<figure class="spectrum"><figcaption>{esc(caption)}</figcaption>'
        f'<img src="{esc(src)}" alt="{esc(caption)}" loading="eager"></figure>'
    )


def file_section(entries: list[dict], names: list[str], runs: list[str], conditions: list) -> str:
    """Players, spectrograms and metrics of one file; `entries` are its results in each run."""
    first = entries[0]
    key = file_key(first["file"])
    base = f"audio/{key}/"
    players = [player("reference (= identity)", base + audio_name("reference", None), "ref")]
    players += [
        player(c, base + audio_name(c, None), "cond") for c in conditions if c != "identity"
    ]
    players += [
        player(f"{label}: reconstruction", base + audio_name("model", i), "run")
        for i, label in enumerate(runs)
    ]
    img = f"img/{key}/"
    top = [picture(img + "reference.png", "reference")]
    top += [picture(img + f"run{i + 1}.png", label) for i, label in enumerate(runs)]
    bottom = ['<div class="legend">difference: reconstruction − reference, dB</div>']
    bottom += [
        picture(img + f"run{i + 1}_diff.png", f"{label} − reference")
        for i, label in enumerate(runs)
    ]
    systems = [(label, "run", e["model"]) for label, e in zip(runs, entries)]
    systems += [(c, "cond", first[c]) for c in conditions]
    info = (
        f"{first['seconds']:.2f} s, file {first['file_sample_rate']} Hz, "
        f"{first['file_channels']} channel(s)"
    )
    return (
        f'<section class="file" id="{esc(key)}" data-file="{esc(first["file"])}">'
        f"<h3>{esc(first['file'])} <small>{esc(info)}</small></h3>"
        f'<div class="players">{"".join(players)}</div>'
        f'<div class="spectra" style="grid-template-columns: repeat({len(runs) + 1}, auto)">'
        f"{''.join(top + bottom)}</div>"
        f'<table class="metrics file-metrics"><thead><tr><th>system</th>'
        f"{metric_header(names, sortable=False)}</tr></thead>"
        f"<tbody>{rows(systems, names)}</tbody></table></section>"
    )


def read(path: Path) -> tuple:
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data.T, rate


def write_page(folder: Path, results: list[dict], runs: list[str]) -> Path:
    """Draw the spectrograms, copy the assets and write folder/index.html from the evaluate()
    results of each run (whose audio AudioWriter wrote into folder/audio). Returns the page."""
    files = [f["file"] for f in results[0]["files"]]
    for label, r in zip(runs[1:], results[1:]):
        if [f["file"] for f in r["files"]] != files:
            raise AudioAEError(f"{label} evaluated other files than {runs[0]}; cannot compare")
    names = list(results[0]["metrics"])
    conditions = [c for c in results[0]["conditions"] if c != "model"]
    sections, data_files = [], []
    for n, file in enumerate(files):
        entries = [r["files"][n] for r in results]
        key = file_key(file)
        audio = folder / "audio" / key
        draw_file(
            folder / "img" / key,
            read(audio / audio_name("reference", None)),
            {f"run{i + 1}": read(audio / audio_name("model", i)) for i in range(len(runs))},
        )
        sections.append(file_section(entries, names, runs, conditions))
        data_files.append(
            {
                "file": file,
                "key": key,
                "reference": f"audio/{key}/{audio_name('reference', None)}",
                "runs": [f"audio/{key}/{audio_name('model', i)}" for i in range(len(runs))],
            }
        )
    for asset in ASSETS:
        shutil.copyfile(Path(__file__).with_name(asset), folder / asset)
    rates = {r["model"]["sample_rate"] for r in results}
    notes = list(results[0]["notes"])
    if len(rates) > 1:
        notes.append(
            f"the runs' sample rates differ ({', '.join(map(str, sorted(rates)))} Hz): the "
            f"reference, the conditions and the pictures are at {runs[0]}'s, "
            f"{results[0]['model']['sample_rate']} Hz; each run is measured at its own"
        )
    run_list = "".join(
        f"<li><b>{esc(label)}</b>: {esc(r['checkpoint'])} ({r['model']['sample_rate']} Hz, "
        f"{r['model']['in_channels']} → {r['model']['out_channels']} channels, ratio "
        f"{r['model']['downsampling_ratio']})</li>"
        for label, r in zip(runs, results)
    )
    definitions = "".join(
        f"<dt>{esc(HEADERS[k])}</dt><dd>{esc(v)}</dd>" for k, v in results[0]["metrics"].items()
    ) + "".join(
        f"<dt>{esc(c)}</dt><dd>{esc(v)}</dd>"
        for c, v in results[0]["conditions"].items()
        if c != "model"
    )
    data = {"runs": runs, "files": data_files}
    embedded = json.dumps(data).replace("</", "<\\/")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>audioae listening report: {esc(", ".join(runs))}</title>
<link rel="stylesheet" href="report.css"></head>
<body data-images="pending">
<header><h1>Listening report</h1>
<p>{len(files)} file(s) under {esc(results[0]["root"])}, {esc(results[0]["date"])}</p>
<ul class="runs">{run_list}</ul>
<nav><button id="mode" type="button">blind A/B test</button></nav></header>
<main id="report">
<section id="means"><h2>Means</h2>
<p>Click a metric to sort the systems of each scope by it (best first; again to reverse).
The reference conditions give the scale: identity is the best possible score, a low-pass a
band-limited but otherwise perfect reconstruction.</p>
{summary_table(results, names, runs)}
<ul class="notes">{"".join(f"<li>{esc(n)}</li>" for n in notes)}</ul>
<dl class="definitions">{definitions}</dl></section>
<section id="files"><h2>Files</h2>
<p>Spectrograms: log-mel power (80 dB range of the reference); differences from −20 (blue,
quieter than the reference) to +20 dB (red, louder).</p>
{"".join(sections)}</section>
</main>
<section id="ab" hidden></section>
<script type="application/json" id="data">{embedded}</script>
<script src="report.js"></script>
</body></html>
"""
    write_text(folder / PAGE, page)
    return folder / PAGE
