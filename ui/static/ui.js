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

// The approval queue: polled every half second; decisions are POSTed with the CSRF header.
(function () {
  const table = document.getElementById("queue");
  if (!table) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const body = table.tBodies[0];
  const empty = document.getElementById("queue-empty");
  const message = document.getElementById("queue-message");
  let shown = "";

  function cell(row, text, name) {
    const td = document.createElement("td");
    td.className = name;
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function button(label, name, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.name = name;
    b.textContent = label;
    b.addEventListener("click", onClick);
    return b;
  }

  async function decide(id, decision, minutes) {
    const form = new URLSearchParams({ decision: decision, minutes: String(minutes || 0) });
    const response = await fetch("/approvals/" + encodeURIComponent(id), {
      method: "POST", headers: { "X-CSRF-Token": csrf }, body: form, credentials: "same-origin",
    });
    const answer = await response.json();
    message.textContent = response.ok ? "" : answer.error;
    refresh();
  }

  function render(pending) {
    const ids = pending.map(function (h) { return h.id; }).join(",");
    empty.hidden = pending.length > 0;
    table.hidden = pending.length === 0;
    if (ids !== shown) {
      shown = ids;
      body.replaceChildren();
      pending.forEach(function (h) {
        const row = document.createElement("tr");
        row.dataset.id = h.id;
        cell(row, h.id, "c-id");
        cell(row, h.agent, "c-agent");
        cell(row, h.service, "c-service");
        cell(row, h.method + " " + h.url, "c-request");
        cell(row, h.preview, "c-preview");
        cell(row, "", "c-left");
        const actions = cell(row, "", "c-actions");
        const minutes = document.createElement("input");
        minutes.type = "number"; minutes.min = "1"; minutes.max = "1440"; minutes.value = "10";
        minutes.name = "minutes";
        actions.appendChild(button("approve once", "approve", function () { decide(h.id, "approve", 0); }));
        actions.appendChild(button("approve for", "approve-for", function () { decide(h.id, "approve", minutes.value); }));
        actions.appendChild(minutes);
        actions.appendChild(document.createTextNode(" min "));
        actions.appendChild(button("deny", "deny", function () { decide(h.id, "deny", 0); }));
        body.appendChild(row);
      });
    }
    pending.forEach(function (h) {
      const row = body.querySelector('tr[data-id="' + CSS.escape(h.id) + '"]');
      if (row) row.querySelector(".c-left").textContent = Math.max(0, Math.round(h.remaining)) + " s";
    });
  }

  async function refresh() {
    try {
      const response = await fetch("/approvals.json", { credentials: "same-origin" });
      if (response.ok) render((await response.json()).pending);
    } catch (e) { /* the page stopped; keep polling */ }
  }
  refresh();
  setInterval(refresh, 500);
})();
