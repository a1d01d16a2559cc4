// sockspec report: matrix sorting, results filtering, opening details on links,
// copy buttons. Plain DOM, no library; the report reads fine without it.
(function () {
  "use strict";

  function openAncestors(element) {
    for (var node = element; node; node = node.parentElement) {
      if (node.tagName === "DETAILS") { node.open = true; }
    }
  }

  function showHash() {
    var id = decodeURIComponent(location.hash.slice(1));
    var target = id && document.getElementById(id);
    if (target) {
      openAncestors(target);
      target.scrollIntoView({block: "start"});
    }
  }

  // Matrix: rows sorted by name, or by failures + errors (most first).
  // One table per kind judged (servers, clients); one sort order for all of them.
  function setupMatrix() {
    var tables = Array.prototype.slice.call(document.querySelectorAll("table.matrix"));
    if (!tables.length) { return; }
    var select = document.getElementById("matrix-sort");
    function sortRows(how) {
      tables.forEach(function (table) { sortTable(table, how); });
      if (select) { select.value = how; }
    }
    function sortTable(table, how) {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        if (how === "broken") {
          var diff = Number(b.dataset.broken) - Number(a.dataset.broken);
          if (diff !== 0) { return diff; }
        }
        return a.dataset.name < b.dataset.name ? -1 : a.dataset.name > b.dataset.name ? 1 : 0;
      });
      rows.forEach(function (row) { body.appendChild(row); });
      table.querySelectorAll("button[data-sort]").forEach(function (button) {
        button.parentElement.setAttribute("aria-sort",
          button.dataset.sort === how ? (how === "broken" ? "descending" : "ascending") : "none");
      });
    }
    tables.forEach(function (table) {
      table.querySelectorAll("button[data-sort]").forEach(function (button) {
        button.addEventListener("click", function () { sortRows(button.dataset.sort); });
      });
      table.addEventListener("click", onMatrixClick);
    });
    if (select) {
      select.addEventListener("change", function () { sortRows(select.value); });
    }
    function onMatrixClick(event) {
      var link = event.target.closest("a[data-filter]");
      if (link && link.getAttribute("href") === "#results") {
        event.preventDefault();
        applyFilter(link.dataset.filter);
      }
    }
  }

  // Results list: "key:value" words match one column exactly, other words any text.
  var COLUMNS = {target: 0, transport: 1, family: 2, scenario: 3};
  var filterRows = null;

  function indexRows() {
    filterRows = [];
    document.querySelectorAll("details.rgroup").forEach(function (group) {
      group.querySelectorAll("tbody tr").forEach(function (row) {
        var cells = Array.prototype.map.call(row.cells, function (c) { return c.textContent; });
        filterRows.push({
          row: row,
          outcome: group.dataset.outcome,
          cells: cells,
          text: cells.join(" ").toLowerCase()
        });
      });
    });
  }

  function parseFilter(text) {
    var exact = [], words = [];
    text.trim().split(/\s+/).forEach(function (word) {
      if (!word) { return; }
      var colon = word.indexOf(":");
      var key = colon > 0 ? word.slice(0, colon).toLowerCase() : "";
      if (key in COLUMNS || key === "outcome") {
        exact.push([key, word.slice(colon + 1)]);
      } else {
        words.push(word.toLowerCase());
      }
    });
    return {exact: exact, words: words};
  }

  function runFilter() {
    if (!filterRows) { indexRows(); }
    var query = parseFilter(document.getElementById("filter-text").value);
    var wanted = {};
    document.querySelectorAll("#filters input[data-outcome]").forEach(function (box) {
      wanted[box.dataset.outcome] = box.checked;
    });
    var shown = {}, total = 0;
    filterRows.forEach(function (entry) {
      var ok = query.exact.every(function (pair) {
        return pair[0] === "outcome" ? entry.outcome === pair[1]
          : entry.cells[COLUMNS[pair[0]]] === pair[1];
      }) && query.words.every(function (word) { return entry.text.indexOf(word) !== -1; });
      entry.row.hidden = !ok;
      if (ok) { shown[entry.outcome] = (shown[entry.outcome] || 0) + 1; }
      if (ok && wanted[entry.outcome]) { total += 1; }
    });
    var filtering = query.exact.length + query.words.length > 0;
    document.querySelectorAll("details.rgroup").forEach(function (group) {
      var outcome = group.dataset.outcome;
      var count = group.querySelector(".rg-count");
      var all = Number(count.dataset.total), n = shown[outcome] || 0;
      group.hidden = !wanted[outcome] || (filtering && n === 0);
      count.textContent = filtering ? n + " of " + all + " items match" : all + (all === 1 ? " item" : " items");
      // A narrowed list is what the reader asked to see: open it.
      if (filtering && n > 0) { group.open = true; }
    });
    document.getElementById("filter-count").textContent = "showing " + total + " of " + filterRows.length;
  }

  function applyFilter(text) {
    document.getElementById("filter-text").value = text;
    runFilter();
    document.getElementById("results").scrollIntoView({block: "start"});
  }

  function setupFilters() {
    var form = document.getElementById("filters");
    if (!form || !document.querySelector("details.rgroup")) { return; }
    form.hidden = false;
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    var timer = null;
    document.getElementById("filter-text").addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(runFilter, 120);
    });
    form.querySelectorAll("input[data-outcome]").forEach(function (box) {
      box.addEventListener("change", runFilter);
    });
    document.getElementById("filter-clear").addEventListener("click", function () {
      document.getElementById("filter-text").value = "";
      form.querySelectorAll("input[data-outcome]").forEach(function (box) { box.checked = true; });
      runFilter();
    });
  }

  function copyText(text, button) {
    function done() {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    }
    function fallback() {
      var area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); done(); } catch (e) { button.textContent = "Select and copy"; }
      document.body.removeChild(area);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  }

  // Copy buttons are made here, not in the markup: without a script they could not work.
  function setupCopyButtons() {
    document.querySelectorAll(".repro").forEach(function (box) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy";
      button.textContent = "Copy";
      box.appendChild(button);
    });
    document.addEventListener("click", function (event) {
      var button = event.target.closest(".repro button.copy");
      if (button) { copyText(button.parentElement.querySelector("code").textContent, button); }
    });
  }

  // Printing: failure entries print open, whatever the reader collapsed on screen.
  function setupPrint() {
    var reopened = [];
    window.addEventListener("beforeprint", function () {
      document.querySelectorAll("#failures details, #measurements details").forEach(function (d) {
        if (!d.open) { d.open = true; reopened.push(d); }
      });
    });
    window.addEventListener("afterprint", function () {
      reopened.forEach(function (d) { d.open = false; });
      reopened = [];
    });
  }

  // A link into a collapsed entry opens it first, even when the hash does not change.
  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[href^='#']");
    var id = link && decodeURIComponent(link.getAttribute("href").slice(1));
    var target = id && document.getElementById(id);
    if (target) { openAncestors(target); }
  });

  setupMatrix();
  setupFilters();
  setupCopyButtons();
  setupPrint();
  window.addEventListener("hashchange", showHash);
  if (location.hash) { showHash(); }
  document.body.setAttribute("data-rendered", "1");
}());
