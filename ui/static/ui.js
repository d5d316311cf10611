// clavis-mcp ui: part of clavis-mcp, Apache-2.0. No third-party code.
// The session: the token is never a cookie (cookies ignore ports, so another 127.0.0.1 port could
// have it bounced to it). It arrives in the URL's fragment, which no request carries (the printed
// URL, or the one a launch file of `clavis-mcp ui` sends the browser to). It is kept in
// sessionStorage (this origin, port included, this tab) and sent in a header. A navigation gets
// only a shell; this script fetches the page with the header.
"use strict";
(function () {
  const KEY = "clavis-session";
  const SETTLE_MS = 500;  // a click this soon after a queue row left (rows moved) is not trusted
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  if (fragment.has("token")) {
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }

  function say(text) {
    const main = document.querySelector("main");
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = text;
    main.replaceChildren(p);
  }

  // Sent here by another site (the launch file is one): only the fragment's token opens the page,
  // never the one this tab kept, so no other site can bring the person into their session.
  function session() {
    if (fragment.has("token")) sessionStorage.setItem(KEY, fragment.get("token"));
    else if (document.body.hasAttribute("data-elsewhere")) return null;
    return sessionStorage.getItem(KEY);
  }

  async function open() {
    const token = session();
    const again = "this tab has no access token: open the URL that `clavis-mcp ui` printed";
    if (!token) { say(again); return; }
    const response = await fetch(window.location.pathname + window.location.search, {
      headers: { "X-Clavis-Session": token, "Accept": "text/html" },
    });
    if (response.status === 401) { sessionStorage.removeItem(KEY); say(again); return; }
    // Only the server's own HTML pages are swapped in: any other answer (JSON holding agent text)
    // is shown as text, never parsed as markup.
    const kind = (response.headers.get("Content-Type") || "").split(";")[0].trim().toLowerCase();
    if (kind !== "text/html") { say(await response.text()); return; }
    // The server's own page (every audit field in it escaped there); its scripts are dropped, not run.
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    page.querySelectorAll("script").forEach(function (s) { s.remove(); });
    document.title = page.title;
    const csrf = page.querySelector('meta[name="csrf-token"]');
    if (csrf) document.head.appendChild(document.adoptNode(csrf));
    document.body.replaceWith(document.adoptNode(page.body));
    tail(token);
    queue(token, csrf ? csrf.content : "");
  }

  // The live tail: new records arrive as server-sent events read from a fetch (an EventSource
  // cannot send the header) and are added at the top of the table. Rows are built with
  // textContent: audit fields come from agents and are never markup.
  function tail(token) {
    const mark = document.getElementById("tail");
    const table = document.getElementById("records");
    if (!mark || !table || !document.body.hasAttribute("data-live")) return;
    const params = new URLSearchParams(window.location.search);
    params.delete("page");
    params.set("from", mark.dataset.from);
    const titles = ["time", "agent", "service", "request", "status", "decision", "reason"];
    const badge = document.getElementById("live");
    function live(on) {
      if (!badge) return;
      badge.classList.toggle("on", on);
      badge.textContent = on ? "live" : "reconnecting";
    }

    function add(data) {
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
    }

    function dispatch(block) {
      let kind = "message";
      const data = [];
      block.split("\n").forEach(function (line) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      });
      if (kind === "record" && data.length) add(JSON.parse(data.join("\n")));
    }

    async function follow() {
      for (;;) {
        try {
          const response = await fetch("/events?" + params.toString(), { headers: { "X-Clavis-Session": token } });
          if (response.ok) {
            live(true);
            const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
            let buffer = "";
            for (;;) {
              const { value, done } = await reader.read();
              if (done) break;
              buffer += value;
              let end;
              while ((end = buffer.indexOf("\n\n")) >= 0) {
                dispatch(buffer.slice(0, end));
                buffer = buffer.slice(end + 2);
              }
            }
          }
        } catch (e) { /* the page stopped; try again */ }
        live(false);
        await new Promise(function (resolve) { setTimeout(resolve, 2000); });
      }
    }
    follow();
  }

  // Rows that stay where they are while the pointer may be on them, so a click acts on what the
  // person read: an item no longer listed is marked "ended" and its controls disabled, and leaves
  // the table only when the pointer and the focus are elsewhere; a click just after rows moved (one
  // left, or the section above changed height) is ignored. New rows are added at the bottom, which
  // moves none. Cells are text: every value came from an agent and is never markup.
  function steady(table, empty, key, build, update) {
    const rows = new Map();
    let changed = -SETTLE_MS;

    function render(items) {
      const now = new Map(items.map(function (item) { return [key(item), item]; }));
      const away = !table.matches(":hover") && !table.contains(document.activeElement);
      let moved = false;
      rows.forEach(function (row, id) {
        if (now.has(id)) return;
        if (away) {
          row.remove();
          rows.delete(id);
          moved = true;
        } else if (!row.classList.contains("gone")) {
          row.classList.add("gone");
          row.querySelectorAll("button, input").forEach(function (b) { b.disabled = true; });
          row.querySelector(".c-left").textContent = "ended";
        }
      });
      now.forEach(function (item, id) {
        if (!rows.has(id)) {
          const row = build(item);
          row.dataset.id = id;
          table.tBodies[0].appendChild(row);
          rows.set(id, row);
        }
        update(rows.get(id), item);
      });
      if (moved) changed = performance.now();
      empty.hidden = items.length > 0;
      table.hidden = rows.size === 0;
    }
    return {
      render: render,
      moved: function () { changed = performance.now(); },
      settled: function () { return performance.now() - changed >= SETTLE_MS; },
    };
  }

  function cell(row, text, name) {
    const td = document.createElement("td");
    td.className = name;
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function button(label, name, id, rows, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.name = name;
    b.textContent = label;
    b.title = label + " " + id;
    b.addEventListener("click", function () { if (rows.settled()) onClick(); });
    return b;
  }

  // The approval queue and the live grants: polled every half second; decisions and revocations
  // are POSTed with the CSRF header, each naming the request it is about. A held request shows its
  // method as sent (overrides included), the method judged (what a grant is keyed on) and the
  // body's size before its preview. The grants sit below the queue, so a change of the queue's
  // height counts as their rows moving.
  function queue(token, csrf) {
    const table = document.getElementById("queue");
    if (!table) return;
    const section = document.getElementById("approvals");
    let height = section.offsetHeight;

    async function post(path, form, id, message) {
      const response = await fetch(path, {
        method: "POST", headers: { "X-Clavis-Session": token, "X-CSRF-Token": csrf }, body: form,
      });
      const answer = await response.json();
      message.textContent = response.ok ? "" : id + ": " + answer.error;
      refresh();
    }

    function decide(id, decision, minutes) {
      const form = new URLSearchParams({ decision: decision, minutes: String(minutes || 0) });
      post("/approvals/" + encodeURIComponent(id), form, id, document.getElementById("queue-message"));
    }

    const held = steady(table, document.getElementById("queue-empty"), function (h) { return h.id; }, function (h) {
      const row = document.createElement("tr");
      cell(row, h.id, "c-id");
      cell(row, h.agent, "c-agent");
      cell(row, h.service, "c-service");
      cell(row, h.method + " " + h.url, "c-request");
      cell(row, h.judged, "c-judged");
      cell(row, h.size, "c-size");
      cell(row, h.preview, "c-preview");
      cell(row, "", "c-left");
      const actions = cell(row, "", "c-actions");
      const minutes = document.createElement("input");
      minutes.type = "number"; minutes.min = "1"; minutes.max = "1440"; minutes.value = "10";
      minutes.name = "minutes";
      const covers = "this agent, service and " + h.judged + ", on any path of " + h.host;
      const forMinutes = button("approve for", "approve-for", h.id, held, function () { decide(h.id, "approve", minutes.value); });
      forMinutes.title = "approve " + h.id + ", and for that many minutes every request of " + covers;
      actions.appendChild(button("approve once", "approve", h.id, held, function () { decide(h.id, "approve", 0); }));
      actions.appendChild(forMinutes);
      actions.appendChild(minutes);
      actions.appendChild(document.createTextNode(" min "));
      actions.appendChild(button("deny", "deny", h.id, held, function () { decide(h.id, "deny", 0); }));
      const note = document.createElement("div");
      note.className = "covers";
      note.textContent = "approve for: " + covers;
      actions.appendChild(note);
      return row;
    }, function (row, h) {
      row.querySelector(".c-left").textContent = Math.max(0, Math.round(h.remaining)) + " s";
    });

    const grants = steady(document.getElementById("grants"), document.getElementById("grants-empty"),
      function (g) { return g.held_id; }, function (g) {
        const row = document.createElement("tr");
        cell(row, g.agent, "c-agent");
        cell(row, g.service, "c-service");
        cell(row, g.method, "c-method");
        cell(row, g.host, "c-host");
        cell(row, "", "c-left");
        cell(row, g.granted_by, "c-by");
        cell(row, "", "c-actions").appendChild(button("revoke", "revoke", g.held_id, grants, function () {
          post("/grants/" + encodeURIComponent(g.held_id) + "/revoke", null, g.held_id,
               document.getElementById("grants-message"));
        }));
        return row;
      }, function (row, g) {
        row.querySelector(".c-left").textContent = g.minutes_left + " min";
      });

    function render(answer) {
      held.render(answer.pending);
      if (section.offsetHeight !== height) {
        height = section.offsetHeight;
        grants.moved();
      }
      grants.render(answer.grants);
    }

    async function refresh() {
      try {
        const response = await fetch("/approvals.json", { headers: { "X-Clavis-Session": token } });
        if (response.ok) render(await response.json());
      } catch (e) { /* the page stopped; keep polling */ }
    }
    refresh();
    setInterval(refresh, 500);
  }

  if (document.body.hasAttribute("data-shell")) open();
})();
