// sandbox console: decisions and live updates. Text from the server is only ever inserted
// as textContent, never as HTML.
"use strict";
(function () {
  const sidEl = document.getElementById("sid");
  if (!sidEl) return;
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const sid = sidEl.textContent;
  const base = "/api/v1/sessions/" + encodeURIComponent(sid);
  const status = document.getElementById("status");
  const message = document.getElementById("message");
  let busy = false;

  function note(listId, text) {
    const li = document.createElement("li");
    li.textContent = text;
    document.getElementById(listId).appendChild(li);
  }

  document.addEventListener("click", async function (ev) {
    const b = ev.target.closest("button[data-act]");
    if (!b || busy) return;
    const file = b.closest("section.file");
    const path = file.dataset.path;
    const body = {message: message.value || null, expect: {}};
    body.expect[path] = file.dataset.etag;
    if (b.dataset.hunk) {
      body.hunks = {};
      body.hunks[path] = [parseInt(b.dataset.hunk, 10)];
    } else {
      body.paths = [path];
    }
    busy = true;
    status.textContent = "working...";
    const headers = {"Content-Type": "application/json"};
    if (csrf) headers["X-CSRF-Token"] = csrf;
    const r = await fetch(base + "/" + b.dataset.act, {
      method: "POST", headers: headers, body: JSON.stringify(body), credentials: "same-origin"});
    const j = await r.json().catch(function () { return {}; });
    if (r.ok) {
      status.textContent = "done: session is " + j.state;
      location.reload();
    } else {
      status.textContent = "refused (" + r.status + "): " + (j.error || "");
      status.className = "error";
      busy = false;
    }
  });

  // New audit records of this session (a run ended, something was decided): show them, unless
  // the person is in the middle of writing a message.
  const events = new EventSource("/api/v1/events?session=" + encodeURIComponent(sid));
  ["changeset", "commit", "decision"].forEach(function (name) {
    events.addEventListener(name, function () {
      if (!busy && !message.value) location.reload();
    });
  });
  // Files as the agent writes them, and the person's own edits to paths the session changes.
  const watch = new EventSource(base + "/watch");
  watch.addEventListener("written", function (e) {
    note("written", "written by the session: " + JSON.parse(e.data).path);
  });
  watch.addEventListener("conflict", function (e) {
    note("conflicts", "coming conflict: the workspace changed " + JSON.parse(e.data).path);
  });
})();
