// The listening report's behaviour (audioae/report/page.py writes the page): sorting the means
// table, the blind A/B mode, and, for tests, what loaded (data-* attributes the DOM shows).
// Address flags: #sort=KEY (ascending), #sort=-KEY (descending), #ab (A/B mode), &seed=N (its
// order; otherwise random at each page load), &reveal (labels shown).
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const flags = new URLSearchParams(location.hash.slice(1));

  // ---- sorting: each <tbody> (one scope) is ranked on its own
  let sorted = null;
  function value(row, key) {
    const c = row.querySelector('td[data-key="' + key + '"]');
    return c && c.dataset.value !== "" ? parseFloat(c.dataset.value) : NaN;
  }
  function sortBy(key, descending) {
    const table = document.getElementById("summary");
    for (const body of table.tBodies) {
      const rows = Array.from(body.rows);
      rows.sort(function (a, b) {
        const x = value(a, key), y = value(b, key);
        if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y); // no value: last
        return descending ? y - x : x - y;
      });
      for (const r of rows) body.appendChild(r);
    }
    for (const th of table.tHead.rows[0].cells) {
      th.classList.remove("asc", "desc");
      if (th.dataset.key === key) th.classList.add(descending ? "desc" : "asc");
    }
    sorted = { key: key, descending: descending };
    document.body.dataset.sort = key + (descending ? ":desc" : ":asc");
  }
  for (const th of document.querySelectorAll("#summary th[data-key]")) {
    th.addEventListener("click", function () {
      const key = th.dataset.key;
      const best = th.dataset.higher === "1"; // best first: descending when higher is better
      sortBy(key, sorted && sorted.key === key ? !sorted.descending : best);
    });
  }
  const sort = flags.get("sort");
  if (sort) sortBy(sort.replace(/^-/, ""), sort.startsWith("-"));

  // ---- what loaded, for a headless browser's --dump-dom
  function watch(audio) {
    const done = function () {
      audio.dataset.duration = audio.duration;
      audio.dataset.ready = audio.readyState;
    };
    if (audio.readyState >= 1) done();
    audio.addEventListener("loadedmetadata", done);
    audio.addEventListener("error", function () {
      audio.dataset.error = audio.error ? audio.error.code : "unknown";
    });
  }
  document.querySelectorAll("audio").forEach(watch);
  window.addEventListener("load", function () {
    let ok = 0;
    for (const img of document.images) {
      img.dataset.naturalWidth = img.naturalWidth;
      if (img.complete && img.naturalWidth > 0) ok++;
    }
    document.body.dataset.images = ok + "/" + document.images.length;
  });

  // ---- blind A/B: per file the candidates in a shuffled order, labels hidden until revealed
  function mulberry32(a) {
    return function () {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function audioFigure(caption, src) {
    const fig = el("figure", { class: "player" });
    fig.appendChild(el("figcaption", {}, caption));
    const audio = el("audio", { controls: "", preload: "metadata", src: src });
    fig.appendChild(audio);
    watch(audio);
    return fig;
  }
  // several runs: their reconstructions, with the reference open; one run: reference or not?
  function candidates(file) {
    if (data.runs.length > 1) return data.runs.map((label, i) => ({ label: label, src: file.runs[i] }));
    return [
      { label: "reference", src: file.reference },
      { label: data.runs[0], src: file.runs[0] },
    ];
  }
  let seed = null;
  function buildAB(chosen) {
    seed = chosen;
    const rand = mulberry32(seed);
    const section = document.getElementById("ab");
    section.replaceChildren();
    section.appendChild(el("h2", {}, "Blind A/B test"));
    section.appendChild(el("p", {}, data.runs.length > 1
      ? "Per file, the runs' reconstructions in a shuffled order; the reference is open. " +
        "Pick the one you prefer, then reveal."
      : "Per file, the reference and the reconstruction in a shuffled order: which is the " +
        "original? Pick it, then reveal."));
    data.files.forEach(function (file, n) {
      const block = el("div", { class: "ab-file", "data-file": file.file });
      block.appendChild(el("h3", {}, file.file));
      if (data.runs.length > 1) block.appendChild(audioFigure("reference", file.reference));
      const order = candidates(file);
      for (let i = order.length - 1; i > 0; i--) { // Fisher-Yates
        const j = Math.floor(rand() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      order.forEach(function (c, i) {
        const letter = String.fromCharCode(65 + i);
        const fig = audioFigure(letter, c.src);
        fig.classList.add("ab-choice");
        const label = el("span", { class: "ab-label", hidden: "" }, c.label);
        fig.querySelector("figcaption").appendChild(label);
        const pick = el("label", { class: "pick" });
        pick.appendChild(el("input", { type: "radio", name: "pick" + n, value: c.label }));
        pick.appendChild(document.createTextNode(data.runs.length > 1 ? " prefer" : " original"));
        fig.appendChild(pick);
        block.appendChild(fig);
      });
      section.appendChild(block);
    });
    const reveal = el("button", { type: "button", id: "reveal" }, "reveal");
    reveal.addEventListener("click", revealAB);
    section.appendChild(reveal);
    section.appendChild(el("div", { id: "ab-result" }));
  }
  function revealAB() {
    document.querySelectorAll("#ab .ab-label").forEach((l) => l.removeAttribute("hidden"));
    const tally = {};
    document.querySelectorAll("#ab input[type=radio]:checked").forEach(function (r) {
      tally[r.value] = (tally[r.value] || 0) + 1;
    });
    const picks = Object.keys(tally).map((k) => k + ": " + tally[k]).join(", ") || "none";
    const result = document.getElementById("ab-result");
    result.replaceChildren(
      el("p", {}, "Your picks of " + data.files.length + " file(s): " + picks + "."),
      el("p", {}, "Order seed " + seed + ": open the page with #ab&seed=" + seed +
        " for the same order.")
    );
    document.body.dataset.revealed = "1";
  }
  function setMode(ab) {
    document.querySelectorAll("audio").forEach((a) => a.pause());
    if (ab && seed === null) {
      const given = parseInt(flags.get("seed"), 10);
      buildAB(isNaN(given) ? Math.floor(Math.random() * 2147483647) : given);
    }
    document.getElementById("report").hidden = ab;
    document.getElementById("ab").hidden = !ab;
    document.getElementById("mode").textContent = ab ? "full report" : "blind A/B test";
    document.body.dataset.mode = ab ? "ab" : "report";
  }
  document.getElementById("mode").addEventListener("click", function () {
    setMode(document.body.dataset.mode !== "ab");
  });
  setMode(flags.has("ab"));
  if (flags.has("ab") && flags.has("reveal")) revealAB();
})();
