// clavis-mcp ui: part of clavis-mcp, Apache-2.0. No third-party code.
// The live tail: new records arrive as server-sent events and are added at the top of the
// table. Rows are built with textContent: audit fields come from agents and are never markup.
"use strict";
(function () {
  const tail = document.getElementById("tail");
  const table = document.getElementById("records");
  if (!tail || !table || !document.body.hasAttribute("data-live")) return;
  const params = new URLSearchParams(window.location.search);
  params.delete("page");
  params.set("from", tail.dataset.from);
  const titles = ["time", "agent", "service", "request", "status", "decision", "reason"];
  const badge = document.getElementById("live");
  const source = new EventSource("/events?" + params.toString());
  source.onopen = function () { if (badge) { badge.classList.add("on"); badge.textContent = "live"; } };
  source.onerror = function () { if (badge) { badge.classList.remove("on"); badge.textContent = "reconnecting"; } };
  source.addEventListener("record", function (event) {
    const data = JSON.parse(event.data);
    const row = document.createElement("tr");
    row.className = "rec fresh d-row-" + String(data.record.decision || "");
    row.dataset.id = String(data.record.id || "");
    data.cells.forEach(function (text, i) {
      const td = document.createElement("td");
      td.className = "c-" + titles[i];
      td.textContent = text;
      row.appendChild(td);
    });
    const td = document.createElement("td");
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "#" + String(data.record.seq || "");
    const dl = document.createElement("dl");
    Object.keys(data.record).forEach(function (key) {
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      const value = data.record[key];
      dd.textContent = typeof value === "string" ? value : JSON.stringify(value);
      dl.appendChild(dt);
      dl.appendChild(dd);
    });
    details.appendChild(summary);
    details.appendChild(dl);
    td.appendChild(details);
    row.appendChild(td);
    table.tBodies[0].insertBefore(row, table.tBodies[0].firstChild);
    const empty = document.querySelector("p.empty");
    if (empty) empty.remove();
  });
})();
