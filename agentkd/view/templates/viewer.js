// The table's filters and goal search; in the one-file episodes.html, also the views behind #t=ID and #c=A,B.
(function () {
  "use strict";
  function params() {
    var p = new URLSearchParams(location.search);
    new URLSearchParams(location.hash.slice(1)).forEach(function (v, k) { p.set(k, v); });
    return p;
  }
  function applyFilters() {
    var form = document.getElementById("filters");
    if (!form) return;
    var q = document.getElementById("q").value.trim().toLowerCase();
    var wanted = {};
    form.querySelectorAll("select[data-filter]").forEach(function (s) { if (s.value !== "") wanted[s.dataset.filter] = s.value; });
    var rows = document.querySelectorAll("#rows tr.row"), shown = 0;
    rows.forEach(function (r) {
      var ok = !q || r.dataset.goal.indexOf(q) >= 0;
      for (var key in wanted) { if (ok && r.dataset[key] !== wanted[key]) ok = false; }
      r.hidden = !ok;
      if (ok) shown++;
    });
    document.getElementById("count").textContent = shown + " of " + rows.length + " trajectories";
  }
  // Filters named in the address (?run=sc@8&success=no, or #run=... in episodes.html) set the form;
  // an address without any keeps what the reader chose.
  function initFilters() {
    var form = document.getElementById("filters");
    if (!form) return;
    var p = params(), named = false;
    p.forEach(function (v, k) { if (k === "q" || form.querySelector("select[data-filter='" + k + "']")) named = true; });
    if (named || !form.dataset.ready) {
      document.getElementById("q").value = p.get("q") || "";
      form.querySelectorAll("select[data-filter]").forEach(function (s) {
        var v = p.get(s.dataset.filter) || "";
        s.value = Array.prototype.some.call(s.options, function (o) { return o.value === v; }) ? v : "";
      });
    }
    if (!form.dataset.ready) {
      form.dataset.ready = "1";
      form.addEventListener("input", applyFilters);
      form.addEventListener("change", applyFilters);
    }
    applyFilters();
  }
  // ---- episodes.html: one file, every view -------------------------------------------------------
  function show(id) {
    document.querySelectorAll("main > section.view").forEach(function (s) { s.hidden = s.id !== id; });
    window.scrollTo(0, 0);
  }
  function buildCompare(a, b) {
    var sa = document.getElementById("t-" + a), sb = document.getElementById("t-" + b);
    var view = document.getElementById("view-compare");
    if (!sa || !sb) { view.textContent = "These episodes are not in this file."; return; }
    var divergences = JSON.parse(document.getElementById("divergences").textContent);
    var d = divergences[a + "," + b];
    d = d === undefined ? null : d;
    var stepsA = sa.querySelectorAll("ol.transcript .step"), stepsB = sb.querySelectorAll("ol.transcript .step");
    view.innerHTML = '<p><a href="#">← all episodes</a></p><p class="divergence" id="divergence"></p>' +
      '<table class="compare"><thead><tr><th></th><th></th><th></th></tr></thead><tbody></tbody></table>';
    var note = view.querySelector("#divergence");
    if (d === null) {
      note.textContent = "The two runs take the same actions.";
    } else {  // built from nodes: the ids come from the address
      var link = document.createElement("a");
      link.href = location.hash;
      link.dataset.jump = d;
      link.textContent = "step " + d;
      note.append("First diverging step: ", link, ".");
    }
    var head = view.querySelectorAll("thead th");
    head[1].appendChild(sa.querySelector(".head").cloneNode(true));
    head[2].appendChild(sb.querySelector(".head").cloneNode(true));
    var body = view.querySelector("tbody");
    for (var i = 0; i < Math.max(stepsA.length, stepsB.length); i++) {
      var tr = document.createElement("tr");
      tr.className = "pair" + (i === d ? " diverge" : "");
      tr.id = "step-" + i;
      tr.dataset.step = i;
      var th = document.createElement("th");
      th.textContent = i;
      if (i === d) { th.appendChild(document.createElement("br")); var l = document.createElement("span"); l.className = "diverge-label"; l.textContent = "first divergence"; th.appendChild(l); }
      tr.appendChild(th);
      [stepsA[i], stepsB[i]].forEach(function (s) { var td = document.createElement("td"); if (s) td.appendChild(s.cloneNode(true)); tr.appendChild(td); });
      body.appendChild(tr);
    }
    var jump = view.querySelector("[data-jump]");
    if (jump) jump.addEventListener("click", function (e) { e.preventDefault(); document.getElementById("step-" + d).scrollIntoView(); });
  }
  function route() {
    var p = new URLSearchParams(location.hash.slice(1));
    if (p.has("t") && document.getElementById("t-" + p.get("t"))) { show("t-" + p.get("t")); return; }
    if (p.has("c")) { var ab = p.get("c").split(","); buildCompare(ab[0], ab[1]); show("view-compare"); return; }
    show("view-index");
    initFilters();
  }
  if (document.getElementById("view-compare")) {
    window.addEventListener("hashchange", route);
    route();
  } else {
    initFilters();
  }
})();
