// DLQ console: plain JavaScript over the management API. Every value from
// the API is put into the page with textContent, never as HTML.
"use strict";

const API = "/hobom-event-processor/internal/api/v1";
const store = window.sessionStorage;
const $ = (id) => document.getElementById(id);

let cursor = "";        // nextCursor of the listing
let selected = null;    // key shown in the detail pane
let preview = null;     // query string of the last dry run
let jobTimer = null;

// api calls the management API with the key of this tab; a 401 logs out.
async function api(method, path) {
  const headers = { "x-api-key": store.getItem("apiKey") || "" };
  const op = store.getItem("operator");
  if (op) headers["x-operator"] = op;
  const resp = await fetch(API + path, { method, headers, credentials: "omit", cache: "no-store" });
  let body = {};
  try { body = await resp.json(); } catch (e) { body = { error: "not JSON (" + resp.status + ")" }; }
  if (resp.status === 401) { logout("The API key was refused."); throw new Error("unauthorized"); }
  if (!resp.ok) throw new Error(resp.status + ": " + (body.error || resp.statusText));
  return body;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function row(...cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}
function td(content, cls) {
  const t = el("td", null, cls);
  t.appendChild(content instanceof Node ? content : document.createTextNode(content ?? ""));
  return t;
}

function ago(iso) {
  if (!iso) return "–";
  return duration((Date.now() - Date.parse(iso)) / 1000) + " ago";
}
function duration(s) {
  if (s === null || s === undefined) return "never";
  s = Math.max(0, Math.round(s));
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}

// confirmAction shows the confirmation dialog; resolves true on Confirm.
function confirmAction(text) {
  return new Promise((resolve) => {
    const d = $("confirm");
    $("confirm-text").textContent = text;
    d.onclose = () => resolve(d.returnValue === "ok");
    d.returnValue = "";
    d.showModal();
  });
}

// ---- login ----

function showApp(on) {
  $("login").hidden = on;
  $("app").hidden = !on;
  $("who").hidden = !on;
  if (on) $("operator-label").textContent = store.getItem("operator") || "operator";
}

function logout(msg) {
  store.removeItem("apiKey");
  store.removeItem("operator");
  clearInterval(jobTimer);
  showApp(false);
  $("login-error").textContent = msg || "";
}

async function login(ev) {
  ev.preventDefault();
  store.setItem("apiKey", $("api-key").value);
  store.setItem("operator", $("operator").value.trim());
  $("api-key").value = "";
  try {
    await api("GET", "/dlq/summary");
  } catch (e) {
    if (e.message !== "unauthorized") logout("Cannot reach the API: " + e.message);
    return;
  }
  $("login-error").textContent = "";
  showApp(true);
  refreshAll();
}

// ---- summary ----

async function loadSummary() {
  const body = await api("GET", "/dlq/summary");
  const s = body.summary;
  $("s-total").textContent = s.total + (s.complete ? "" : "+");
  $("s-12h").textContent = s.expiringWithin12h;
  $("s-24h").textContent = s.expiringWithin24h;
  $("tile-12h").classList.toggle("on", s.expiringWithin12h > 0);
  $("s-oldest").textContent = s.oldestFailure ? ago(s.oldestFailure.at) : "–";
  $("s-newest").textContent = s.newestFailure ? ago(s.newestFailure.at) : "–";
  $("summary-meta").textContent = "as of " + new Date(body.generatedAt).toLocaleTimeString() + (s.complete ? "" : " (partial: the walk hit its bound)");

  const byClass = $("by-class");
  byClass.replaceChildren();
  for (const c of body.reasonClasses) {
    const tr = row(td(el("span", c, "cls " + c)), td(String(s.byReasonClass[c] || 0)));
    if (s.byReasonClass[c]) {
      tr.className = "link";
      tr.title = "Show these entries";
      tr.onclick = () => { $("f-class").value = c; loadList(true); };
    }
    byClass.appendChild(tr);
  }
  const byType = $("by-type");
  byType.replaceChildren();
  for (const [t, n] of Object.entries(s.byEventType).sort()) byType.appendChild(row(td(t), td(String(n))));
  for (const [p] of Object.entries(s.byPrefix)) {
    if (![...$("f-prefix").options].some((o) => o.value === p)) $("f-prefix").appendChild(new Option(p, p));
  }
  if (!$("f-class").options.length || $("f-class").options.length === 1) {
    for (const c of body.reasonClasses) $("f-class").appendChild(new Option(c, c));
  }
}

// ---- listing ----

function filterQuery() {
  const q = new URLSearchParams();
  q.set("prefix", $("f-prefix").value);
  const add = (name, id) => { const v = $(id).value.trim(); if (v) q.set(name, v); };
  add("reasonClass", "f-class");
  add("maxAge", "f-maxage");
  add("minAge", "f-minage");
  add("expiresWithin", "f-expires");
  return q;
}

async function loadList(fresh) {
  if (fresh) { cursor = ""; $("rows").replaceChildren(); resetBulk(); }
  const q = filterQuery();
  q.set("details", "true");
  q.set("limit", "50");
  if (cursor) q.set("cursor", cursor);
  $("list-error").textContent = "";
  let body;
  try { body = await api("GET", "/dlq?" + q); } catch (e) { $("list-error").textContent = e.message; return; }
  const entries = (body.entries || []).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const e of entries) {
    const tr = row(
      td(e.key, "key"),
      td(e.eventType || ""),
      td(el("span", e.reasonClass, "cls " + e.reasonClass)),
      td(ago(e.lastFailedAt)),
      td(e.ttlSeconds == null ? "never" : duration(e.ttlSeconds), e.ttlSeconds != null && e.ttlSeconds < 43200 ? "soon" : ""),
    );
    tr.dataset.key = e.key;
    tr.title = e.reason || "";
    tr.onclick = () => showEntry(e.key);
    $("rows").appendChild(tr);
  }
  cursor = body.nextCursor || "";
  $("more").hidden = !cursor;
  if (!$("rows").children.length && !cursor) $("list-error").textContent = "No entry matches.";
}

// ---- one entry ----

async function showEntry(key) {
  selected = key;
  for (const tr of $("rows").children) tr.classList.toggle("sel", tr.dataset.key === key);
  $("d-result").textContent = "";
  let body;
  try { body = await api("GET", "/dlq/" + encodeURIComponent(key)); } catch (e) {
    $("d-result").textContent = e.message;
    $("d-result").className = "error";
    return;
  }
  $("detail").hidden = false;
  $("d-key").textContent = key;
  const meta = $("d-meta");
  meta.replaceChildren();
  const m = body.meta;
  const fields = [
    ["event", (m.eventType || "") + " " + m.eventId], ["topic", m.topic], ["reason", m.reason],
    ["attempts", m.attempts], ["first failed", m.firstFailedAt ? m.firstFailedAt + " (" + ago(m.firstFailedAt) + ")" : "–"],
    ["last failed", m.lastFailedAt ? m.lastFailedAt + " (" + ago(m.lastFailedAt) + ")" : "–"],
    ["expires in", m.ttlSeconds == null ? "never" : duration(m.ttlSeconds)],
    ["written by", m.hasMeta ? "this service" : "the old service (no metadata)"],
    ["replayable", m.replayable ? "yes" : "no: no route has its prefix"],
  ];
  for (const [k, v] of fields) meta.appendChild(row(td(k), td(v === undefined ? "–" : String(v))));
  $("d-value").textContent = typeof body.item === "string" ? body.item : JSON.stringify(body.item, null, 2);
  $("d-replay").disabled = !m.replayable;
  $("d-keep").disabled = $("d-discard").disabled = false;
  $("detail").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

async function entryAction(kind) {
  const key = selected;
  let path, text;
  if (kind === "replay") {
    path = "/dlq/retry/" + encodeURIComponent(key);
    text = "Replay " + key + " to Kafka and delete it from the DLQ?";
  } else if (kind === "keep") {
    const ttl = $("d-ttl").value.trim() || "72h";
    path = "/dlq/keep/" + encodeURIComponent(key) + "?ttl=" + encodeURIComponent(ttl);
    text = "Keep " + key + " for " + ttl + " from now?";
  } else {
    const reason = $("d-reason").value.trim();
    if (!reason) { result("A discard needs a reason.", false); return; }
    path = "/dlq/" + encodeURIComponent(key) + "?reason=" + encodeURIComponent(reason);
    text = "Discard " + key + " without publishing it? This cannot be undone.";
  }
  if (!(await confirmAction(text))) return;
  let msg, ok = false;
  try {
    const body = await api(kind === "discard" ? "DELETE" : "POST", path);
    ok = true;
    if (kind === "replay") msg = "Replayed to " + body.topic + " partition " + body.partition + " offset " + body.offset + "; entry removed.";
    else if (kind === "keep") msg = "Kept: expires in " + duration(body.ttlSeconds) + ".";
    else msg = "Discarded.";
  } catch (e) {
    msg = e.message;
  }
  if (ok && kind === "keep") await showEntry(key);
  else if (ok) for (const b of ["d-replay", "d-keep", "d-discard"]) $(b).disabled = true;
  result(msg, ok);
  refreshAll();
}

function result(text, ok) {
  $("d-result").textContent = text;
  $("d-result").className = ok ? "ok" : "error";
}

// ---- bulk ----

function bulkQuery() {
  const q = filterQuery();
  q.set("rate", $("b-rate").value || "10");
  if ($("b-op").value === "keep") q.set("ttl", $("b-ttl").value.trim() || "72h");
  return q;
}

function resetBulk() {
  preview = null;
  $("b-start").disabled = true;
  $("b-preview").textContent = "";
}

async function dryRun() {
  const q = bulkQuery();
  q.set("dryRun", "true");
  try {
    const body = await api("POST", "/dlq/" + $("b-op").value + "?" + q);
    const verb = body.op === "keep" ? "keep" : "replay";
    let text = "Dry run: would " + verb + " " + body.keys.length + " of " + body.matched + " matching entries";
    if (body.invalid && body.invalid.length) text += " (" + body.invalid.length + " cannot be replayed)";
    text += ", about " + body.estimatedSeconds + " s at " + body.rate + "/s";
    if (body.truncated) text += "; more match than one job takes";
    if (body.keys.length) text += ". First: " + body.keys.slice(0, 5).join(", ");
    $("b-preview").textContent = text + ".";
    preview = body.keys.length ? bulkQuery().toString() : null;
    $("b-start").disabled = !preview;
  } catch (e) {
    $("b-preview").textContent = e.message;
  }
}

async function startBulk() {
  const q = bulkQuery();
  if (q.toString() !== preview) { resetBulk(); $("b-preview").textContent = "The filter changed: run the dry run again."; return; }
  const verb = $("b-op").value === "keep" ? "Keep" : "Replay";
  if (!(await confirmAction(verb + " every entry the dry run listed (" + q + ")?"))) return;
  try {
    const job = await api("POST", "/dlq/" + $("b-op").value + "?" + q);
    resetBulk();
    watchJob(job.jobId);
  } catch (e) {
    $("b-preview").textContent = e.message;
  }
}

function showJob(j) {
  const done = j.replayed + j.kept + j.failed + j.skipped;
  $("job").hidden = false;
  $("job").dataset.state = j.state;
  $("job-progress").max = Math.max(j.matched, 1);
  $("job-progress").value = done;
  $("job-text").textContent = (j.op === "keep" ? "keep" : "replay") + " job " + j.jobId + ": " + j.state + ", " +
    (j.op === "keep" ? j.kept + " kept" : j.replayed + " replayed") + ", " + j.failed + " failed, " + j.skipped +
    " skipped, " + j.remaining + " remaining of " + j.matched + (j.endReason ? " (" + j.endReason + ")" : "");
  $("job-cancel").hidden = j.state !== "running";
  $("job-cancel").onclick = async () => {
    if (await confirmAction("Cancel job " + j.jobId + "? Replays in flight finish.")) {
      try { showJob(await api("DELETE", "/dlq/jobs/" + j.jobId)); } catch (e) { $("job-text").textContent = e.message; }
    }
  };
}

function watchJob(id) {
  clearInterval(jobTimer);
  const tick = async () => {
    try {
      const j = await api("GET", "/dlq/jobs/" + id);
      showJob(j);
      if (j.state !== "running") { clearInterval(jobTimer); refreshAll(); }
    } catch (e) {
      clearInterval(jobTimer);
      $("job-text").textContent = e.message;
    }
  };
  tick();
  jobTimer = setInterval(tick, 500);
}

// ---- audit ----

async function loadAudit() {
  const body = await api("GET", "/dlq/audit?limit=50");
  const rows = $("audit-rows");
  rows.replaceChildren();
  for (const a of body.items) {
    if (typeof a !== "object") continue;
    const by = (a.caller && (a.caller.operator ? a.caller.operator + " " : "") + (a.caller.addr || "")) || "";
    const detail = [];
    if (a.op) detail.push(a.op);
    if (a.filter) detail.push(a.filter);
    if (a.reason) detail.push("reason: " + a.reason);
    if (a.error) detail.push(a.error);
    if (a.counts) detail.push(a.counts.matched + " matched");
    if (a.ttlSeconds) detail.push("ttl " + duration(a.ttlSeconds));
    rows.appendChild(row(td(new Date(a.time).toLocaleString()), td(a.action), td(a.key || (a.jobId ? "job " + a.jobId : a.prefix || ""), "key"),
      td(a.outcome), td(by), td(detail.join("; "))));
  }
}

async function refreshAll() {
  for (const r of await Promise.allSettled([loadSummary(), loadAudit(), loadList(true)])) {
    if (r.status === "rejected" && r.reason.message !== "unauthorized") $("list-error").textContent = r.reason.message;
  }
  for (const tr of $("rows").children) tr.classList.toggle("sel", tr.dataset.key === selected);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").onsubmit = login;
  $("logout").onclick = () => logout("Logged out.");
  $("refresh").onclick = () => refreshAll();
  $("audit-refresh").onclick = () => loadAudit();
  $("filter").onsubmit = (ev) => { ev.preventDefault(); loadList(true); };
  $("f-clear").onclick = () => { $("filter").reset(); loadList(true); };
  $("filter").onchange = resetBulk;
  $("tile-12h").onclick = () => { $("f-expires").value = "12h"; loadList(true); };
  $("more").onclick = () => loadList(false);
  $("d-replay").onclick = () => entryAction("replay");
  $("d-keep").onclick = () => entryAction("keep");
  $("d-discard").onclick = () => entryAction("discard");
  $("b-op").onchange = () => {
    $("b-ttl-label").hidden = $("b-op").value !== "keep";
    $("b-rate").value = $("b-op").value === "keep" ? 200 : 10;
    resetBulk();
  };
  $("b-rate").onchange = resetBulk;
  $("b-ttl").onchange = resetBulk;
  $("b-dry").onclick = dryRun;
  $("b-start").onclick = startBulk;
  if (store.getItem("apiKey") !== null) { showApp(true); refreshAll(); } else { showApp(false); }
});
