/* pitfalls lesson site: search by id, title and error text, in plain JavaScript.
 *
 * The index (window.PITFALLS_INDEX, from search-index.js) holds, per scenario, its id, title, challenge,
 * the symptom it expects and the error texts last observed.  A pasted error message rarely matches
 * byte for byte (names, shapes, numbers differ), so a lesson's score is the share of the query's words
 * it contains, each word weighted by how rare it is across the lessons (words no lesson has are ignored).
 */
(function () {
  "use strict";
  var STOP = {};
  ("the a an of to in on at is are was be by for and or not no with as it its this that from into " +
   "but got has have had error errors exception traceback file line call last most recent").split(" ")
    .forEach(function (w) { STOP[w] = true; });

  function words(text) {
    var out = [];
    String(text || "").toLowerCase().split(/[^a-z0-9_]+/).forEach(function (w) {
      if (w.length >= 2 && !/^[0-9_]+$/.test(w) && !STOP[w]) { out.push(w); }
    });
    return out;
  }

  function setOf(list) {
    var s = {};
    list.forEach(function (w) { s[w] = true; });
    return s;
  }

  var data = window.PITFALLS_INDEX || { docs: [] };
  var docs = data.docs.map(function (d) {
    var key = [d.id, d.title, d.challenge].join(" ");
    return { doc: d, key: key.toLowerCase(), words: setOf(words(key + " " + d.errors.join(" ") + " " + d.symptom)) };
  });
  var df = {};
  docs.forEach(function (d) { Object.keys(d.words).forEach(function (w) { df[w] = (df[w] || 0) + 1; }); });

  function has(d, w, last) {
    if (d.words[w]) { return true; }
    if (!last || w.length < 3) { return false; }
    return Object.keys(d.words).some(function (x) { return x.indexOf(w) === 0; });
  }

  function search(query) {
    var q = query.trim().toLowerCase();
    if (!q) { return []; }
    var qs = Object.keys(setOf(words(q)));
    var lastWord = words(q).pop();
    var known = qs.filter(function (w) {
      return df[w] || (w === lastWord && docs.some(function (d) { return has(d, w, true); }));
    });
    var total = 0;
    var weight = {};
    known.forEach(function (w) { weight[w] = Math.log(1 + docs.length / (df[w] || 1)); total += weight[w]; });
    var hits = [];
    docs.forEach(function (d, i) {
      var score = 0;
      known.forEach(function (w) { if (has(d, w, w === lastWord)) { score += weight[w]; } });
      score = total ? score / total : 0;
      if (d.key.indexOf(q) >= 0) { score += 1; }
      if (score >= (known.length > 2 ? 0.34 : 0.01)) { hits.push({ d: d.doc, score: score, order: i }); }
    });
    hits.sort(function (a, b) { return b.score - a.score || a.order - b.order; });
    return hits.slice(0, 8);
  }

  function matchingError(doc, query) {
    var qs = setOf(words(query));
    var best = "", bestCount = 0;
    doc.errors.forEach(function (e) {
      var n = words(e).filter(function (w) { return qs[w]; }).length;
      if (n > bestCount) { best = e; bestCount = n; }
    });
    return best.length > 140 ? best.slice(0, 140) + "…" : best;
  }

  function render(list, query) {
    var box = document.getElementById("search-results");
    var root = document.body.getAttribute("data-root") || "";
    while (box.firstChild) { box.removeChild(box.firstChild); }
    if (!query.trim()) { return; }
    if (!list.length) {
      var none = document.createElement("li");
      none.className = "none";
      none.textContent = "no lesson matches; try fewer words or the error's key phrase";
      box.appendChild(none);
      return;
    }
    list.forEach(function (hit) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = root + hit.d.url;
      a.setAttribute("data-id", hit.d.id);
      a.textContent = hit.d.title;
      var sid = document.createElement("span");
      sid.className = "sid";
      sid.textContent = hit.d.id;
      a.appendChild(sid);
      var why = matchingError(hit.d, query);
      if (why) {
        var w = document.createElement("span");
        w.className = "why";
        w.textContent = "error: " + why;
        a.appendChild(w);
      }
      li.appendChild(a);
      box.appendChild(li);
    });
  }

  function start() {
    var input = document.getElementById("search");
    if (!input) { return; }
    var update = function () { render(search(input.value), input.value); };
    input.addEventListener("input", update);
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") {
        var first = document.querySelector("#search-results a");
        if (first) { window.location.href = first.href; }
      } else if (ev.key === "Escape") {
        input.value = "";
        update();
      }
    });
    var m = /[?&]q=([^&]*)/.exec(window.location.search);
    if (m) { input.value = decodeURIComponent(m[1].replace(/\+/g, " ")); update(); }
  }

  window.pitfallsSearch = search;
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
}());
