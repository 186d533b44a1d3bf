// The LMS settings page. Served from our origin under a CSP without inline script; it talks to the admin
// API with the admin's access token. Text goes in with textContent.
//
// Sign-in is OpenID Connect's authorization code flow with PKCE (S256), state and nonce, done by the
// vendored oidc-client-ts (console/oidc-client-ts.min.js, its version and licence beside it): the page
// holds the tokens in memory only; the sign-in's own state (PKCE verifier, state, nonce) waits in this
// tab's sessionStorage while the browser is at the identity provider.
"use strict";

const DEV_TOKEN_KEY = "rostersync.dev-token"; // development stacks only (a token from the URL fragment)
const TENANT_KEY = "rostersync.tenant"; // the tenant picked, for an admin of several
const $ = (id) => document.getElementById(id);

let manager = null; // oidc-client-ts's UserManager
let user = null; // the signed-in user (tokens), in memory
let devToken = null;

function token() {
  return devToken || (user && user.access_token);
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.error || body.message)) || `the server answered ${status}`);
    this.status = status;
    this.field = body && body.field;
    this.confirm = body && body.confirm; // the server asks before a change that widens what syncs
  }
}

// Send a change; when the server asks for a confirmation, ask the admin and send it again confirmed.
// Resolves to null when the admin says no.
async function confirmed(method, path, body) {
  try {
    return await api(method, path, body);
  } catch (error) {
    if (error.status !== 409 || !error.confirm) throw error;
    if (!window.confirm(error.confirm)) return null;
    return api(method, path, { ...body, confirm: true });
  }
}

async function send(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  const tenantId = sessionStorage.getItem(TENANT_KEY);
  if (tenantId) headers["X-Rostersync-Tenant"] = tenantId;
  if (method !== "GET") headers["Content-Type"] = "application/json";
  return fetch(path, { method, headers, body: method === "GET" ? undefined : JSON.stringify(body || {}) });
}

async function api(method, path, body) {
  let response = await send(method, path, body);
  if (response.status === 401 && manager && user && user.refresh_token) {
    // Expired (or refused): one refresh with the refresh token, then the request once more.
    user = await manager.signinSilent().catch(() => null);
    if (user) response = await send(method, path, body);
  }
  if (response.status === 401) {
    user = null;
    if (devToken) {
      sessionStorage.removeItem(DEV_TOKEN_KEY);
      devToken = null;
      showSignIn("Your development token expired or is not valid.");
    } else {
      showSignIn("Your sign-in expired or was ended; sign in again.");
    }
    throw new ApiError(401, { error: "not signed in" });
  }
  const type = response.headers.get("Content-Type") || "";
  const payload = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, payload);
  return payload;
}

// Each section has its own notice, beside the action that caused it; a new action clears the old one.
function notify(message, isError = false, where = "notice") {
  const notice = $(where);
  notice.textContent = message;
  notice.className = isError ? "notice error" : "notice";
}

function clearNotices() {
  for (const notice of document.querySelectorAll(".notice")) notice.textContent = "";
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
const CONSOLE_URL = `${location.origin}/console`;

function showSignIn(message) {
  $("console").hidden = true;
  $("account").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-again").hidden = !manager;
  $("sign-in-message").textContent = message || "Not signed in.";
  $("whoami").textContent = "Not signed in.";
}

function randomText() {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function goSignIn() {
  // Where the admin was (e.g. ?connected=... after Canvas) comes back with the signed-in user.
  await manager.signinRedirect({ nonce: randomText(), state: { search: location.search } });
}

// True once signed in; false while the browser is on its way to the identity provider.
async function signIn() {
  const config = await (await fetch("/console/sign-in")).json();
  if (config.development_tokens) {
    // Development stacks only (`rostersync admin token --console-url`): a token in the URL fragment.
    const fromFragment = new URLSearchParams(location.hash.slice(1)).get("access_token");
    if (fromFragment) {
      sessionStorage.setItem(DEV_TOKEN_KEY, fromFragment);
      history.replaceState(null, "", location.pathname + location.search);
    }
    devToken = sessionStorage.getItem(DEV_TOKEN_KEY);
    if (devToken) return true;
  }
  if (!config.issuer || !config.client_id) throw new Error("this stack has no identity provider configured");
  manager = new oidc.UserManager({
    authority: config.issuer,
    client_id: config.client_id,
    redirect_uri: CONSOLE_URL,
    post_logout_redirect_uri: CONSOLE_URL,
    response_type: "code",
    scope: "openid email",
    userStore: new oidc.WebStorageStateStore({ store: new oidc.InMemoryWebStorage() }),
    stateStore: new oidc.WebStorageStateStore({ store: sessionStorage }),
    automaticSilentRenew: true, // refreshed with the refresh token before the access token expires
  });
  const query = new URLSearchParams(location.search);
  if (query.has("state") && (query.has("code") || query.has("error"))) {
    // Back from the identity provider: the library exchanges the code with the PKCE verifier, and
    // refuses a state it did not send or an ID token whose nonce is not the one it sent.
    try {
      user = await manager.signinRedirectCallback();
    } finally {
      history.replaceState(null, "", "/console"); // the code never stays in the address bar
    }
    history.replaceState(null, "", `/console${(user.state && user.state.search) || ""}`);
    return true;
  }
  await goSignIn();
  return false;
}

async function signOut() {
  await api("POST", "/admin/sign-out").catch(() => null); // this token stops working here at once
  sessionStorage.removeItem(TENANT_KEY);
  if (devToken) {
    sessionStorage.removeItem(DEV_TOKEN_KEY);
    devToken = null;
    showSignIn("Signed out.");
    return;
  }
  await manager.revokeTokens(["refresh_token"]).catch(() => null);
  user = null;
  // The identity provider's own session ends too; it sends the browser back here. Cognito's logout
  // endpoint reads client_id and logout_uri.
  const extraQueryParams = { client_id: manager.settings.client_id, logout_uri: CONSOLE_URL };
  await manager.signoutRedirect({ extraQueryParams });
}

// Who is signed in, and for which tenant (a picker for an admin of several).
async function chooseTenant() {
  const me = await api("GET", "/admin/me");
  $("signed-in-as").textContent = `Signed in as ${me.email}`;
  $("account").hidden = false;
  if (!me.tenants.length) {
    sessionStorage.removeItem(TENANT_KEY);
    showSignIn(`${me.email} administers no tenant yet: ask an operator to invite you (rostersync admin invite).`);
    $("account").hidden = false;
    return false;
  }
  const saved = sessionStorage.getItem(TENANT_KEY);
  const chosen = me.tenants.some((item) => item.tenant_id === saved) ? saved : me.tenants[0].tenant_id;
  sessionStorage.setItem(TENANT_KEY, chosen);
  $("tenant-picker").replaceChildren(...me.tenants.map((item) => new Option(item.name, item.tenant_id)));
  $("tenant-picker").value = chosen;
  $("tenant-choice").hidden = me.tenants.length < 2;
  return true;
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
    notify("Settings saved. Generate a key to connect rostersync to Canvas.", false, "canvas-notice");
    await loadTenant();
  } catch (error) {
    if (error.field && $(`${error.field}-error`)) {
      $(`${error.field}-error`).textContent = error.message;
      $(error.field).focus();
    } else notify(error.message, true, "canvas-notice");
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
  $("disconnect").disabled = tenant.status !== "active" && tenant.status !== "needs_reauthorization";
  const active = tenant.status === "active";
  for (const id of ["self-test", "sync-now"]) {
    $(id).disabled = !active;
    $(id).title = active ? "" : "Connect rostersync to Canvas first (Generate Key).";
  }
  // Why the page cannot sync now, and what to do, at the top where it is seen first.
  const banner = $("connection-banner");
  banner.hidden = active;
  banner.textContent = {
    needs_reauthorization: `Canvas no longer accepts rostersync's authorization (${tenant.status_reason || "refused"}). `
      + "Syncs, live events and Sync now are stopped until a Canvas admin presses Generate Key and authorizes again.",
    pending_authorization: "rostersync is not connected to Canvas yet: press Generate Key and authorize in Canvas. "
      + "Sync now and the self-test start working once it is connected.",
    not_configured: "Enter your Canvas server, Client ID and Client Secret below, then press Generate Key.",
  }[tenant.status] || "";
  const event = tenant.last_live_event;
  $("last-live-event").textContent = event
    ? `${event.event_name} at ${when(event.received_at)}: ${event.outcome.replaceAll("_", " ")} (${event.reason})`
    : "none received yet";
}

async function disconnect() {
  if (!window.confirm("Disconnect rostersync from Canvas? Syncs stop until someone presses Generate Key again.")) {
    return;
  }
  try {
    const result = await api("POST", "/admin/disconnect");
    notify(`Disconnected: ${result.status_reason}`, false, "connection-notice");
    await loadTenant();
  } catch (error) {
    notify(error.message, true, "connection-notice");
  }
}

async function generateKey() {
  try {
    const { start_url } = await api("POST", "/admin/authorization");
    location.assign(start_url);
  } catch (error) {
    notify(error.message, true, "connection-notice");
  }
}

async function selfTest() {
  notify("Running the self-test...", false, "connection-notice");
  try {
    const report = await api("POST", "/admin/self-test");
    fill("self-test-results", report.checks.map((check) => row([check.name, check.status, check.detail])));
    $("self-test-results").hidden = false;
    notify(report.passed ? "Self-test passed." : "Self-test found problems; see below.", !report.passed,
      "connection-notice");
  } catch (error) {
    notify(error.message, true, "connection-notice");
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
    const courses = await confirmed("POST", "/admin/courses/sync-list", { mode, csv: $("course-csv").value });
    if (!courses) return;
    showCourseSelection(courses);
    notify(`Course sync list updated (${mode}). The next sync uses it.`, false, "courses-notice");
  } catch (error) {
    $("course-list-error").textContent = error.message;
  }
}

async function useAllCourses(event) {
  event.preventDefault();
  $("account-error").textContent = "";
  // Sent as typed: a name or a stray character is refused by the server, never read as "the root account".
  const account = $("account_id").value.trim();
  try {
    const courses = await confirmed("POST", "/admin/courses/all", { account_id: account || null });
    if (!courses) return;
    showCourseSelection(courses);
    notify("Saved: the next sync uses every published course of the account.", false, "courses-notice");
  } catch (error) {
    $("account-error").textContent = error.message;
  }
}

// -- sync settings ---------------------------------------------------------------------------
const ROSTER_ROLES = [["", "default for its base type"], ["student", "student"], ["instructor", "instructor"],
  ["course_admin", "course admin"], ["excluded", "left out"]];

function showSyncSettings(roles) {
  const settings = tenant.settings;
  $("user_id_field").value = settings.user_id_field;
  $("course_id_field").value = settings.course_id_field;
  $("term_ids").value = settings.courses.term_ids.join(", ");
  $("include_unpublished").checked = !settings.courses.published_only;
  const daily = Boolean(settings.schedule.daily_at);
  $("schedule_daily").checked = daily;
  $("schedule_every").checked = !daily;
  $("every_minutes").value = settings.schedule.every_minutes ?? 60;
  $("daily_at").value = settings.schedule.daily_at ?? "02:00";
  $("timezone").value = settings.schedule.timezone;
  $("timezones").replaceChildren(...Intl.supportedValuesOf("timeZone").map((zone) => new Option(zone)));
  $("mass_drop_threshold").value = Math.round(settings.mass_drop_threshold * 100);
  $("mass_drop_min_enrollments").value = settings.mass_drop_min_enrollments;
  // Roles the account has, and any already mapped (so a mapping never disappears from view).
  const byName = new Map(roles.map((role) => [role.name, role]));
  for (const name of Object.keys(settings.role_overrides)) {
    if (!byName.has(name)) byName.set(name, { name, label: name, base_type: "?" });
  }
  fill("role-mapping", [...byName.values()].map((role) => {
    const select = document.createElement("select");
    select.dataset.role = role.name;
    select.setAttribute("aria-label", `${role.label} in the roster as`);
    for (const [value, text] of ROSTER_ROLES) select.append(new Option(text, value));
    select.value = settings.role_overrides[role.name] || "";
    const label = role.label === role.name ? role.name : `${role.label} (${role.name})`;
    return row([label, role.base_type, select]);
  }));
}

async function loadSyncSettings() {
  // The roles come from Canvas: only a connected tenant can list them.
  const roles = tenant.status === "active" ? await api("GET", "/admin/canvas/roles").catch(() => []) : [];
  showSyncSettings(roles);
}

async function saveSyncSettings(event) {
  event.preventDefault();
  $("sync-settings-error").textContent = "";
  const daily = $("schedule_daily").checked;
  const terms = $("term_ids").value.split(",").map((term) => term.trim()).filter(Boolean);
  const overrides = {};
  for (const select of document.querySelectorAll("#role-mapping select")) {
    if (select.value) overrides[select.dataset.role] = select.value;
  }
  const form = {
    user_id_field: $("user_id_field").value,
    course_id_field: $("course_id_field").value,
    role_overrides: overrides,
    term_ids: terms,
    include_unpublished: $("include_unpublished").checked,
    schedule: {
      every_minutes: daily ? null : Number($("every_minutes").value),
      daily_at: daily ? $("daily_at").value : null,
      timezone: $("timezone").value.trim(),
    },
    mass_drop_threshold: Number($("mass_drop_threshold").value) / 100,
    mass_drop_min_enrollments: Number($("mass_drop_min_enrollments").value),
  };
  try {
    if (!(await confirmed("POST", "/admin/settings/sync", form))) return;
    await loadTenant();
    notify(`Sync settings saved. Next sync: ${when(tenant.next_sync_at)}.`, false, "sync-settings-notice");
  } catch (error) {
    $("sync-settings-error").textContent = error.message;
  }
}

// -- sync, runs, errors, holds ---------------------------------------------------------------
async function syncNow() {
  try {
    const { run_id } = await api("POST", "/admin/sync");
    requestedRun = run_id;
    notify(`Sync ${run_id} started; the history below follows it.`, false, "sync-notice");
    await refreshActivity();
  } catch (error) {
    notify(error.message, true, "sync-notice");
  }
}

function showRuns(runs) {
  fill("runs", runs.map((summary) => row([
    when(summary.run.started_at), summary.run.trigger, summary.run.status,
    `${summary.courses_succeeded} ok, ${summary.courses_failed} failed, ${summary.courses_held} held`,
    `${summary.changes.created} created, ${summary.changes.updated} updated, ${summary.changes.dropped} dropped`,
    summary.canvas_requests, summary.run.error_message || summary.run.error_code || "",
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
    notify(error.message, true, "errors-notice");
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
      notify(`Course ${hold.course_id}: drops ${decision === "approve" ? "approved" : "rejected"}.`, false,
        "holds-notice");
      await refreshActivity();
    } catch (error) {
      notify(error.message, true, "holds-notice");
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
  await loadSyncSettings();
}

async function start() {
  let signedIn;
  try {
    signedIn = await signIn();
  } catch (error) {
    showSignIn(`Sign-in failed: ${error.message}. Nothing was signed in; sign in again.`);
    return;
  }
  if (!signedIn) return;
  $("sign-in").hidden = true;
  try {
    if (!(await chooseTenant())) return;
    await loadTenant();
  } catch (error) {
    if (error.status !== 401) showSignIn(error.message);
    return;
  }
  $("console").hidden = false;
  if (new URLSearchParams(location.search).has("connected")) {
    notify(`Connected to Canvas: authorized by ${tenant.authorized_by}, root account ${tenant.root_account_id}.`);
  }
  await refreshActivity().catch((error) => notify(error.message, true));
}

function wire() {
  $("sign-in-again").addEventListener("click", () => goSignIn());
  $("sign-out").addEventListener("click", () => signOut());
  $("tenant-picker").addEventListener("change", async () => {
    sessionStorage.setItem(TENANT_KEY, $("tenant-picker").value);
    clearNotices();
    await loadTenant().catch((error) => notify(error.message, true));
    await refreshActivity().catch((error) => notify(error.message, true));
  });
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
  $("all-courses-form").addEventListener("submit", useAllCourses);
  $("disconnect").addEventListener("click", disconnect);
  $("sync-settings-form").addEventListener("submit", saveSyncSettings);
  // A notice describes the last action; once the admin starts another, it is stale (capture: first).
  $("console").addEventListener("click", (event) => {
    if (event.target.closest("button")) clearNotices();
  }, true);
  $("sync-now").addEventListener("click", syncNow);
  $("error-filter").addEventListener("input", showErrors);
  $("download-errors").addEventListener("click", downloadErrors);
}

wire();
start();
