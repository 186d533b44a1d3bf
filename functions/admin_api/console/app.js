// The LMS settings page. Served from our origin under a CSP without inline script; it talks to the admin
// API with the admin's bearer token, kept in this tab's sessionStorage only. Text goes in with textContent.
"use strict";

const TOKEN_KEY = "rostersync.token";
const $ = (id) => document.getElementById(id);

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.error || body.message)) || `the server answered ${status}`);
    this.status = status;
    this.field = body && body.field;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (method !== "GET") headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: method === "GET" ? undefined : JSON.stringify(body || {}) });
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn("Your sign-in expired or is not valid; sign in again.");
    throw new ApiError(401, { error: "not signed in" });
  }
  const type = response.headers.get("Content-Type") || "";
  const payload = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, payload);
  return payload;
}

function notify(message, isError = false) {
  const notice = $("notice");
  notice.textContent = message;
  notice.className = isError ? "error" : "";
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "-";
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell); else td.textContent = cell ?? "";
    tr.append(td);
  }
  return tr;
}

function fill(tableId, rows) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren(...rows);
}

// -- sign-in ---------------------------------------------------------------------------------
function showSignIn(message) {
  $("console").hidden = true;
  $("sign-in").hidden = false;
  $("whoami").textContent = message || "Not signed in.";
}

function takeTokenFromFragment() {
  // An identity provider returns the token in the fragment, which never reaches a server log.
  const fragment = new URLSearchParams(location.hash.slice(1));
  const fromFragment = fragment.get("access_token") || fragment.get("id_token");
  if (fromFragment) {
    sessionStorage.setItem(TOKEN_KEY, fromFragment);
    history.replaceState(null, "", location.pathname + location.search);
  }
}

// -- Canvas settings -------------------------------------------------------------------------
let tenant = null;

function clearFieldErrors() {
  for (const el of document.querySelectorAll(".field-error")) el.textContent = "";
}

function showSettings() {
  $("canvas_url").value = tenant.canvas_url || "";
  $("client_id").value = tenant.client_id || "";
  $("client_secret").value = "";
  $("client_secret").placeholder = tenant.client_secret_saved ? "saved (leave blank to keep)" : "";
  $("settings-fields").disabled = true;
  $("save-settings").disabled = true;
  $("edit-settings").disabled = false;
}

async function saveSettings(event) {
  event.preventDefault();
  clearFieldErrors();
  const form = {
    canvas_url: $("canvas_url").value.trim(),
    client_id: $("client_id").value.trim(),
    client_secret: $("client_secret").value || null,
  };
  try {
    await api("POST", "/admin/settings/canvas", form);
    notify("Settings saved. Generate a key to connect rostersync to Canvas.");
    await loadTenant();
  } catch (error) {
    if (error.field && $(`${error.field}-error`)) {
      $(`${error.field}-error`).textContent = error.message;
      $(error.field).focus();
    } else notify(error.message, true);
  }
}

async function copy(event) {
  const source = $(event.currentTarget.dataset.copy);
  const button = event.currentTarget;
  try {
    await navigator.clipboard.writeText(source.textContent);
  } catch {
    // No clipboard permission (plain http, or a locked-down browser): select it for Ctrl+C instead.
    getSelection().selectAllChildren(source);
  }
  const label = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = label; }, 1500);
}

// -- connection ------------------------------------------------------------------------------
function showConnection() {
  $("whoami").textContent = `${tenant.name} (${tenant.tenant_id})`;
  $("redirect-uri").textContent = tenant.redirect_uri;
  $("scopes").textContent = tenant.developer_key_scopes.join("\n");
  const reason = tenant.status_reason ? ` - ${tenant.status_reason}` : "";
  $("status").textContent = tenant.status.replaceAll("_", " ") + reason;
  $("authorized-by").textContent = tenant.authorized_by
    ? `${tenant.authorized_by} on ${when(tenant.authorized_at)}` : "-";
  $("root-account").textContent = tenant.root_account_id ?? "-";
  $("generate-key").disabled = !tenant.canvas_url;
  $("self-test").disabled = tenant.status !== "active";
  $("sync-now").disabled = tenant.status !== "active";
}

async function generateKey() {
  try {
    const { start_url } = await api("POST", "/admin/authorization");
    location.assign(start_url);
  } catch (error) {
    notify(error.message, true);
  }
}

async function selfTest() {
  notify("Running the self-test...");
  try {
    const report = await api("POST", "/admin/self-test");
    fill("self-test-results", report.checks.map((check) => row([check.name, check.status, check.detail])));
    $("self-test-results").hidden = false;
    notify(report.passed ? "Self-test passed." : "Self-test found problems; see below.", !report.passed);
  } catch (error) {
    notify(error.message, true);
  }
}

// -- courses ---------------------------------------------------------------------------------
function showCourseSelection(courses) {
  $("course-selection").textContent = courses.sync_list.length
    ? `Syncing the ${courses.sync_list.length} courses of the sync list: ${courses.sync_list.join(", ")}`
    : `Syncing all ${courses.published_only ? "published " : ""}courses of ${
      courses.account_id ? `account ${courses.account_id}` : "the root account"}.`;
}

async function changeCourseList(event) {
  event.preventDefault();
  $("course-list-error").textContent = "";
  const mode = event.submitter.dataset.mode;
  try {
    const courses = await api("POST", "/admin/courses/sync-list", {
      mode, csv: $("course-csv").value, confirm: $("replace-confirm").checked,
    });
    showCourseSelection(courses);
    notify(`Course sync list updated (${mode}).`);
  } catch (error) {
    $("course-list-error").textContent = error.message;
  }
}

async function syncAllCourses(event) {
  event.preventDefault();
  try {
    const account = $("account_id").value.trim();
    showCourseSelection(await api("POST", "/admin/courses/all", { account_id: account ? Number(account) : null }));
    notify("Syncing all courses of the account.");
  } catch (error) {
    notify(error.message, true);
  }
}

// -- sync, runs, errors, holds ---------------------------------------------------------------
async function syncNow() {
  try {
    const { run_id } = await api("POST", "/admin/sync");
    requestedRun = run_id;
    notify(`Sync ${run_id} started.`);
    await refreshActivity();
  } catch (error) {
    notify(error.message, true);
  }
}

function showRuns(runs) {
  fill("runs", runs.map((summary) => row([
    when(summary.run.started_at), summary.run.trigger, summary.run.status,
    `${summary.courses_succeeded} ok, ${summary.courses_failed} failed, ${summary.courses_held} held`,
    `${summary.changes.created} created, ${summary.changes.updated} updated, ${summary.changes.dropped} dropped`,
    summary.canvas_requests, summary.run.error_code || "",
  ])));
  const last = runs[0];
  $("last-sync").textContent = last ? `${when(last.run.started_at)} (${last.run.status})` : "never";
  $("next-sync").textContent = when(tenant.next_sync_at);
}

let errors = [];

function showErrors() {
  const filter = $("error-filter").value.trim().toLowerCase();
  const shown = errors.filter((error) =>
    !filter || [error.course_id, error.user_id, error.code, error.message].join(" ").toLowerCase().includes(filter));
  fill("errors", shown.map((error) => row([error.course_id, error.user_id, error.code, error.message])));
}

async function downloadErrors() {
  try {
    const csv = await api("GET", "/admin/errors?format=csv");
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
    link.download = "sync-errors.csv";
    link.click();
    URL.revokeObjectURL(link.href);
  } catch (error) {
    notify(error.message, true);
  }
}

function decisionButton(hold, decision) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = decision === "approve" ? "Approve drops" : "Reject drops";
  button.addEventListener("click", async () => {
    const question = decision === "approve"
      ? `Drop ${hold.would_drop} enrollments from course ${hold.course_id}? They leave the roster the platform sees.`
      : `Keep ${hold.would_drop} enrollments of course ${hold.course_id} active although Canvas dropped them?`;
    if (!window.confirm(question)) return;
    try {
      await api("POST", `/admin/holds/${hold.course_id}/${decision}`);
      notify(`Course ${hold.course_id}: drops ${decision === "approve" ? "approved" : "rejected"}.`);
      await refreshActivity();
    } catch (error) {
      notify(error.message, true);
    }
  });
  return button;
}

// Who a hold would drop (or dropped): names and the identifier the platform knows them by.
function dropList(hold) {
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = `${hold.would_drop} enrollments`;
  const list = document.createElement("ul");
  for (const drop of hold.drops || []) {
    const item = document.createElement("li");
    item.textContent = `${drop.name || "(no name)"} (${drop.identifier || "no identifier"}, enrollment ${drop.enrollment_id})`;
    list.append(item);
  }
  details.append(summary, list);
  return details;
}

function showHolds(holds, decided) {
  fill("holds", holds.map((hold) => {
    const decide = document.createElement("span");
    decide.append(decisionButton(hold, "approve"), " ", decisionButton(hold, "reject"));
    return row([hold.course_id, dropList(hold), when(hold.created_at), decide]);
  }));
  fill("decided-holds", decided.map((hold) => row([
    hold.course_id, dropList(hold), hold.status, hold.decided_by, when(hold.decided_at),
  ])));
}

let polling = null;
let requestedRun = null; // queued by this page, perhaps not planned (listed) yet

async function refreshActivity() {
  const [runs, found, holds, decided, totals] = await Promise.all([
    api("GET", "/admin/runs"), api("GET", "/admin/errors"), api("GET", "/admin/holds"),
    api("GET", "/admin/holds/decided"), api("GET", "/admin/roster/totals"),
  ]);
  showRuns(runs);
  errors = found;
  showErrors();
  showHolds(holds, decided);
  for (const [name, count] of Object.entries(totals)) $(`total-${name}`).textContent = count;
  // While a run is queued or in progress, follow it.
  clearTimeout(polling);
  const queued = requestedRun && !runs.some((summary) => summary.run.run_id === requestedRun);
  if (queued || (runs[0] && ["planning", "running"].includes(runs[0].run.status))) {
    polling = setTimeout(() => refreshActivity().catch((error) => notify(error.message, true)), 2000);
  }
}

async function loadTenant() {
  tenant = await api("GET", "/admin/tenant");
  showSettings();
  showConnection();
  showCourseSelection(tenant.settings.courses);
}

async function start() {
  takeTokenFromFragment();
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    start();
  });
  if (!token()) {
    showSignIn();
    return;
  }
  $("sign-in").hidden = true;
  try {
    await loadTenant();
  } catch (error) {
    if (error.status !== 401) notify(error.message, true);
    return;
  }
  $("console").hidden = false;
  if (new URLSearchParams(location.search).has("connected")) {
    notify(`Connected to Canvas: authorized by ${tenant.authorized_by}, root account ${tenant.root_account_id}.`);
  }
  await refreshActivity().catch((error) => notify(error.message, true));
}

function wire() {
  $("edit-settings").addEventListener("click", () => {
    $("settings-fields").disabled = false;
    $("save-settings").disabled = false;
    $("edit-settings").disabled = true;
    $("canvas_url").focus();
  });
  $("settings-form").addEventListener("submit", saveSettings);
  for (const button of document.querySelectorAll("button.copy")) button.addEventListener("click", copy);
  $("generate-key").addEventListener("click", generateKey);
  $("self-test").addEventListener("click", selfTest);
  $("course-list-form").addEventListener("submit", changeCourseList);
  $("all-courses-form").addEventListener("submit", syncAllCourses);
  $("sync-now").addEventListener("click", syncNow);
  $("error-filter").addEventListener("input", showErrors);
  $("download-errors").addEventListener("click", downloadErrors);
}

wire();
start();
