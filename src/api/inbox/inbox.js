// voxmail web inbox. Talks to /api/v1 with a session token from
// POST /api/v1/login; builds the DOM with textContent only.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: null, mailbox: null, folder: "inbox", blobUrl: null, events: null, showLog: false };
const logLines = [];

function log(line) {
  logLines.push(line);
  // Test mode (#autologin): the headless browser test reads the console.
  if (state.showLog) console.log("voxmail: " + line);
  const el = $("log");
  el.textContent = logLines.join("\n");
  el.hidden = !state.showLog;
}

function status(text) { $("status").textContent = text; }

async function api(method, path, body, headers) {
  const opts = { method, headers: Object.assign({}, headers || {}) };
  if (state.token) opts.headers["Authorization"] = "Bearer " + state.token;
  if (body !== undefined) {
    if (body instanceof Blob) {
      opts.body = body;
    } else {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
  }
  const resp = await fetch(path, opts);
  if (resp.status === 401 && state.token) {
    signOut("Your session has ended; please sign in again.");
  }
  if (!resp.ok) {
    let message = resp.status + " " + resp.statusText;
    try { message = (await resp.json()).error.message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return resp;
}

function boxPath(rest) {
  return "/api/v1/mailboxes/" + encodeURIComponent(state.mailbox) + rest;
}

// ---- sign in / out -------------------------------------------------------

async function signIn(mailbox, pin) {
  $("login-error").textContent = "";
  try {
    const resp = await api("POST", "/api/v1/login", { mailbox, pin });
    const body = await resp.json();
    state.token = body.token;
    state.mailbox = body.mailbox;
    sessionStorage.setItem("voxmail", JSON.stringify({ token: state.token, mailbox: state.mailbox }));
    await showInbox();
    return true;
  } catch (e) {
    $("login-error").textContent = e.message;
    return false;
  }
}

function signOut(reason) {
  if (state.token) {
    fetch("/api/v1/logout", { method: "POST", headers: { Authorization: "Bearer " + state.token } }).catch(() => {});
  }
  if (state.events) state.events.abort();
  state.token = null;
  state.mailbox = null;
  sessionStorage.removeItem("voxmail");
  $("inbox-view").hidden = true;
  $("login-view").hidden = false;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login-error").textContent = reason || "";
}

async function showInbox() {
  $("login-view").hidden = true;
  $("inbox-view").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = "Mailbox " + state.mailbox;
  await refresh();
  watchEvents();
}

// ---- listing -------------------------------------------------------------

function fmtDuration(s) {
  const t = Math.round(s);
  return Math.floor(t / 60) + ":" + String(t % 60).padStart(2, "0");
}

function fmtDate(iso) {
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

function button(text, cls, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (cls) b.className = cls;
  b.addEventListener("click", onClick);
  return b;
}

// Refreshes overlap (a folder click while an event's refresh is in
// flight): only the latest one may draw, or the list could show the
// folder that was left.
let refreshSeq = 0;
let refreshesPending = 0;

async function refresh() {
  const seq = ++refreshSeq;
  refreshesPending++;
  let box, list;
  try {
    [box, list] = await Promise.all([
      api("GET", boxPath("")).then((r) => r.json()),
      api("GET", boxPath("/messages?folder=" + state.folder + "&limit=500")).then((r) => r.json()),
    ]);
  } finally {
    refreshesPending--;
  }
  if (seq !== refreshSeq) return list.messages;
  $("who").textContent = "Mailbox " + box.number + (box.name ? " — " + box.name : "");
  for (const f of ["inbox", "old", "saved"]) {
    $("count-" + f).textContent = "(" + box.messages[f] + ")";
  }
  renderGreetings(box.greetings);
  const rows = $("message-rows");
  rows.replaceChildren();
  for (const m of list.messages) rows.appendChild(messageRow(m));
  $("empty").hidden = list.messages.length > 0;
  return list.messages;
}

function messageRow(m) {
  const tr = document.createElement("tr");
  tr.dataset.id = m.id;
  tr.className = "message" + (m.unread ? " unread" : "");
  const from = document.createElement("td");
  from.className = "from";
  from.textContent = m.caller_name ? m.caller_name + " <" + m.caller_number + ">" : m.caller_number;
  const date = document.createElement("td");
  date.className = "date";
  const time = document.createElement("time");
  time.dateTime = m.received_at;
  time.textContent = fmtDate(m.received_at);
  date.appendChild(time);
  const dur = document.createElement("td");
  dur.className = "duration";
  dur.textContent = fmtDuration(m.duration_seconds);
  const actions = document.createElement("td");
  actions.className = "actions";
  actions.append(
    button("Play", "play", () => play(m, tr)),
    ...(m.folder !== "saved" ? [button("Save", "save", () => move(m, { folder: "saved" }))] : []),
    deleteButton(m),
  );
  tr.append(from, date, dur, actions);
  return tr;
}

// Two clicks: "Delete", then "Confirm delete" (no modal dialog).
function deleteButton(m) {
  const b = button("Delete", "danger delete", async () => {
    if (!b.classList.contains("confirm")) {
      b.classList.add("confirm");
      b.textContent = "Confirm delete";
      return;
    }
    b.disabled = true;
    try {
      await api("DELETE", boxPath("/messages/" + encodeURIComponent(m.id)));
      status("Deleted the message from " + m.caller_number + ".");
      await refresh();
      log("deleted " + m.id);
    } catch (e) {
      status("Could not delete: " + e.message);
      b.disabled = false;
    }
  });
  return b;
}

async function move(m, patch) {
  try {
    const resp = await api("PATCH", boxPath("/messages/" + encodeURIComponent(m.id)), patch);
    const moved = await resp.json();
    await refresh();
    log("moved " + m.id + " to " + moved.folder);
  } catch (e) {
    status("Could not move: " + e.message);
    log("could not move " + m.id + ": " + e.message);
  }
}

// ---- playing ---------------------------------------------------------------

async function play(m, tr) {
  const player = $("player");
  try {
    const resp = await api("GET", boxPath("/messages/" + encodeURIComponent(m.id) + "/audio"));
    const blob = await resp.blob();
    if (state.blobUrl) URL.revokeObjectURL(state.blobUrl);
    state.blobUrl = URL.createObjectURL(blob);
    document.querySelectorAll("tr.playing").forEach((r) => r.classList.remove("playing"));
    tr.classList.add("playing");
    $("now-playing").textContent = "Playing the message from " + m.caller_number;
    player.dataset.playing = m.id;
    player.src = state.blobUrl;
    player.onended = () => {
      log("ended " + m.id + " at=" + player.currentTime.toFixed(2));
      // Heard: out of the inbox, as on the phone.
      if (m.folder === "inbox") move(m, { read: true });
    };
    const loaded = new Promise((resolve, reject) => {
      player.addEventListener("loadedmetadata", resolve, { once: true });
      player.addEventListener("error", () => reject(new Error("the browser cannot decode the audio")), { once: true });
    });
    player.play().catch(() => { /* autoplay may be refused; the controls remain */ });
    await loaded;
    log("played " + m.id + " bytes=" + blob.size + " duration=" + player.duration.toFixed(2));
  } catch (e) {
    status("Could not play: " + e.message);
    log("play failed " + m.id + ": " + e.message);
  }
}

// ---- greetings -------------------------------------------------------------

function renderGreetings(g) {
  const ul = $("greetings");
  ul.replaceChildren();
  const names = { unavailable: "Unavailable", busy: "Busy", temp: "Temporary", name: "Name" };
  for (const k of Object.keys(names)) {
    const li = document.createElement("li");
    li.dataset.kind = k;
    li.textContent = names[k] + ": " + (g[k] ? "recorded" : "none");
    ul.appendChild(li);
  }
}

async function uploadGreeting(kind, blob) {
  status("Uploading…");
  try {
    const resp = await api("PUT", boxPath("/greetings/" + encodeURIComponent(kind)), blob);
    const body = await resp.json();
    status("Greeting saved (" + body.duration_seconds.toFixed(1) + " s).");
    log("uploaded " + kind + " duration=" + body.duration_seconds.toFixed(2));
    await refresh();
    return true;
  } catch (e) {
    status("Upload failed: " + e.message);
    log("upload failed " + kind + ": " + e.message);
    return false;
  }
}

// ---- live updates ------------------------------------------------------------

// Server-sent events through fetch (EventSource cannot send a token).
async function watchEvents() {
  if (state.events) state.events.abort();
  const ctl = new AbortController();
  state.events = ctl;
  try {
    const resp = await fetch("/api/v1/events", {
      headers: { Authorization: "Bearer " + state.token },
      signal: ctl.signal,
    });
    if (!resp.ok || !resp.body) return;
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    let timer = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (/^event: voicemail_message_/m.test(block)) {
          clearTimeout(timer);
          timer = setTimeout(() => refresh().catch(() => {}), 200);
        }
      }
    }
  } catch (_) {
    /* aborted or dropped: the list still works by hand */
  }
}

// ---- self-test (used by the headless browser test) ---------------------------

// A 1 s, 44.1 kHz stereo 440 Hz WAV, to exercise the upload path without a
// file picker.
function testWav() {
  const rate = 44100, n = rate, ch = 2;
  const buf = new ArrayBuffer(44 + n * ch * 2);
  const v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, "RIFF"); v.setUint32(4, 36 + n * ch * 2, true); str(8, "WAVE");
  str(12, "fmt "); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, ch, true);
  v.setUint32(24, rate, true); v.setUint32(28, rate * ch * 2, true); v.setUint16(32, ch * 2, true);
  v.setUint16(34, 16, true); str(36, "data"); v.setUint32(40, n * ch * 2, true);
  for (let i = 0; i < n; i++) {
    const s = Math.round(8000 * Math.sin(2 * Math.PI * 440 * i / rate));
    for (let c = 0; c < ch; c++) v.setInt16(44 + (i * ch + c) * 2, s, true);
  }
  return new Blob([buf], { type: "audio/wav" });
}

// Drives the real buttons: play the first message, upload a greeting,
// delete the first message (both clicks).
async function autotest(steps) {
  const first = () => document.querySelector("#message-rows tr.message");
  for (const step of steps) {
    const row = first();
    if (step === "play") {
      if (!row) { log("play failed: no message"); continue; }
      row.querySelector("button.play").click();
      await waitFor(() => logLines.some((l) => l.startsWith("play")));
    } else if (step === "listen") {
      // Play to the end: the player must really advance through the audio,
      // and the heard message then leaves the inbox.
      if (!row) { log("listen failed: no message"); continue; }
      const id = row.dataset.id;
      row.querySelector("button.play").click();
      await waitFor(() => logLines.some((l) => l.startsWith("play failed") ||
        l.startsWith("moved " + id) || l.startsWith("could not move")));
    } else if (step.startsWith("folder:")) {
      const b = document.querySelector('#folders button[data-folder="' + step.slice(7) + '"]');
      b.click();
      await state.refreshing;
      await waitFor(() => refreshesPending === 0);
      log("folder " + state.folder + " rows=" + document.querySelectorAll("#message-rows tr.message").length);
    } else if (step === "upload") {
      await uploadGreeting("unavailable", testWav());
    } else if (step === "delete") {
      if (!row) { log("delete failed: no message"); continue; }
      const b = row.querySelector("button.delete");
      b.click();
      b.click();
      await waitFor(() => logLines.some((l) => l.startsWith("deleted")) || $("status").textContent.startsWith("Could not"));
    }
  }
  await waitFor(() => refreshesPending === 0);
  log("rows " + document.querySelectorAll("#message-rows tr.message").length + " in " + state.folder);
  log("autotest done");
  document.body.dataset.autotest = "done";
}

function waitFor(cond) {
  return new Promise((resolve) => {
    const tick = () => (cond() ? resolve() : setTimeout(tick, 50));
    tick();
  });
}

// ---- start -----------------------------------------------------------------

function start() {
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.signingIn = signIn($("login-box").value.trim(), $("login-pin").value);
    $("login-pin").value = "";
  });
  $("logout").addEventListener("click", () => signOut());
  document.querySelectorAll("#folders button").forEach((b) =>
    b.addEventListener("click", () => {
      state.folder = b.dataset.folder;
      document.querySelectorAll("#folders button").forEach((x) => x.classList.toggle("active", x === b));
      state.refreshing = refresh().catch((e) => status(e.message));
    }));
  $("greeting-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const file = $("greeting-file").files[0];
    if (file) uploadGreeting($("greeting-kind").value, file);
  });

  // #autologin&box=1001&pin=1234[&autotest=play,upload,delete]: the
  // fragment never reaches the server, and is cleared at once.
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.has("autologin")) {
    history.replaceState(null, "", location.pathname);
    state.showLog = true;
    const steps = (hash.get("autotest") || "").split(",").filter(Boolean);
    // Through the form, as a person would.
    $("login-box").value = hash.get("box") || "";
    $("login-pin").value = hash.get("pin") || "";
    $("login-form").requestSubmit();
    (state.signingIn || Promise.resolve(false)).then((ok) => {
      log(ok ? "signed in " + state.mailbox : "sign-in failed");
      if (ok && steps.length) autotest(steps);
    });
    return;
  }
  const saved = sessionStorage.getItem("voxmail");
  if (saved) {
    try {
      const s = JSON.parse(saved);
      state.token = s.token;
      state.mailbox = s.mailbox;
      showInbox().catch(() => signOut());
    } catch (_) {
      sessionStorage.removeItem("voxmail");
    }
  }
}

start();
