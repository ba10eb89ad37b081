// @ts-check
/**
 * The inspector's tablet app (docs/app.md): plain ES modules over the client library
 * (`/app/lib`), no framework. Every view reads the local database (IndexedDB) through
 * the library, so the app works the same with or without a network; edits go to the
 * outbox at once and sync when the tablet is online.
 *
 * Views (the URL's hash): `#/` my inspections, `#/i/<id>` an inspection (its stages,
 * findings, sign-offs), `#/i/<id>/l/<link>` a stage's checklist, `#/i/<id>/l/<link>/sign`
 * its sign-off, `#/i/<id>/f/<finding id | new>` a finding.
 * @module
 */
import {
  CLASSIFICATION_LABELS,
  DeviceRevoked,
  HttpError,
  LoginRequired,
  Tablet,
  TransportError,
  contentHash,
  inScope,
  responseId,
} from "/app/lib/index.js";
import { bytes, currentLang, day, setLang, t, tx, when } from "./i18n.js";

const APP_VERSION = "web-0.1.0";
const QUOTA_WARN = 0.8; // warn when this share of the browser's quota is used
const SYNC_EVERY_MS = 30_000;

/** @type {Tablet} */
let tablet;
const ui = {
  online: navigator.onLine,
  syncing: false,
  /** @type {string} */
  syncError: "",
  /** @type {string} */
  notice: "",
  /** @type {string} */
  quota: "",
  /** @type {Record<string, {sent: number, total: number}>} */
  uploads: {},
  /** @type {(() => void) | null} */
  stopWatch: null,
  /** repeats added on screen but not answered yet, by `inspection~link~section` */
  /** @type {Record<string, number>} */
  extraRepeats: {},
  mainStale: false,
  /** syncs ended since the app opened (the bar's `data-syncs`, for tests and diagnostics) */
  syncs: 0,
  /** a form on screen holds input not saved yet: it is not redrawn under the inspector */
  dirty: false,
};
/** @type {Map<string, string>} object URLs of photo thumbnails, by SHA-256 */
const thumbs = new Map();

// --- a tiny DOM helper -------------------------------------------------------------------

/**
 * @param {string} tag @param {Record<string, any> | null} [props]
 * @param {...any} children strings, nodes, arrays, null/false (skipped)
 * @returns {HTMLElement}
 */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") /** @type {any} */ (el).value = v;
    else if (k === "checked") /** @type {any} */ (el).checked = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  const add = (/** @type {any} */ c) => {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) c.forEach(add);
    else el.append(c instanceof Node ? c : String(c));
  };
  children.forEach(add);
  return el;
}

/** @param {string} hash */
function go(hash) {
  if (location.hash === hash) void renderMain();
  else location.hash = hash;
}

/** @param {string} id */
const enc = (id) => encodeURIComponent(id);

// --- start ----------------------------------------------------------------------------

async function start() {
  document.documentElement.lang = currentLang() === "zh" ? "zh-CN" : "en";
  tablet = await Tablet.open({ name: "inspectsync", baseUrl: location.origin, appVersion: APP_VERSION });
  // for diagnostics in the browser's console and for bench/app.py
  Object.assign(globalThis, { inspectsyncApp: { tablet, requestSync, renderMain } });
  // a local edit has redrawn its own part already; what a sync brought is shown when it ends
  tablet.on("change", () => void renderBar());
  tablet.on("sync", (/** @type {any} */ d) => {
    ui.syncing = d.state === "running";
    if (!ui.syncing) {
      ui.uploads = {}; // progress is of the sync that ran; what is left waits
      ui.syncs += 1;
    }
    if (d.state === "done") ui.syncError = "";
    if (d.state === "failed") {
      const err = d.error;
      ui.syncError = err instanceof TransportError ? (ui.online ? t("sync_failed", { detail: err.message }) : "") : "";
      if (err instanceof HttpError) ui.syncError = t("sync_failed", { detail: err.message });
    }
    void renderBar();
    if (d.state === "done") {
      void learnNames().finally(refreshMainSoon);
      void checkStorage();
    }
    else if (d.state !== "running") refreshMainSoon();
  });
  tablet.on("upload", (/** @type {any} */ d) => {
    ui.uploads[`${d.sha256}:${d.inspection_id}`] = { sent: d.sent, total: d.total };
    void renderBar();
  });
  tablet.on("revoked", () => {
    stopWatching();
    ui.notice = t("revoked");
    go("#/login");
  });
  tablet.on("login-required", () => {
    stopWatching();
    ui.notice = t("login_expired");
    go("#/login");
  });
  addEventListener("online", () => {
    ui.online = true;
    void renderBar();
    requestSync();
  });
  addEventListener("offline", () => {
    ui.online = false;
    void renderBar();
  });
  addEventListener("hashchange", () => void renderMain());
  document.addEventListener("focusout", () => setTimeout(() => ui.mainStale && !editing() && renderMain(true), 50));
  const main = /** @type {HTMLElement} */ (document.getElementById("main"));
  for (const type of ["input", "change"]) {
    main.addEventListener(type, (e) => {
      if (/** @type {HTMLElement} */ (e.target).closest("form")) ui.dirty = true;
    });
  }
  setInterval(() => requestSync(), SYNC_EVERY_MS);
  registerServiceWorker();
  await renderBar();
  await renderMain();
  if (tablet.loggedIn) {
    void checkStorage();
    startWatching();
    requestSync();
  }
}

function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" }).catch((err) => console.warn("service worker", err));
}

function startWatching() {
  if (ui.stopWatch) return;
  ui.stopWatch = tablet.watch({ onError: () => {}, maxDelay: 30 });
}

function stopWatching() {
  if (ui.stopWatch) ui.stopWatch();
  ui.stopWatch = null;
}

/** @type {ReturnType<typeof setTimeout> | null} */
let syncTimer = null;
/** Sync soon (edits come in bursts), if online and signed in. @param {number} [delayMs] */
function requestSync(delayMs = 0) {
  if (syncTimer) clearTimeout(syncTimer);
  syncTimer = setTimeout(() => {
    syncTimer = null;
    if (!ui.online || !tablet.loggedIn) return;
    tablet.sync().catch((err) => {
      if (!(err instanceof TransportError || err instanceof DeviceRevoked || err instanceof LoginRequired)) {
        console.error(err);
      }
    });
  }, delayMs);
}

/** Whether the inspector is typing in the main view (then it is not redrawn under them). */
function editing() {
  if (ui.dirty) return true;
  const a = document.activeElement;
  return Boolean(a && a.closest("main") && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName) && a.getAttribute("type") !== "radio" && a.getAttribute("type") !== "checkbox" && a.getAttribute("type") !== "file");
}

function refreshMainSoon() {
  ui.mainStale = true;
  setTimeout(() => {
    if (ui.mainStale && !editing()) void renderMain(true);
  }, 0);
}

/**
 * The names of the people whose values a conflict shows (names, not ids): users do not
 * sync, so the team of each inspection with a conflict naming someone unknown is read
 * once from the inspection's export (`GET .../export.json`, in the inspector's scope)
 * and kept in the local database.
 */
async function learnNames() {
  /** @type {Record<string, string>} */
  const people = { ...(tablet.meta.people || {}) };
  const conflicts = await tablet.records("conflict");
  const want = new Set();
  for (const c of conflicts.values()) {
    for (const v of c.values || []) if (v.by && !(v.by in people)) want.add(c.inspection_id);
  }
  if (!want.size) return;
  for (const iid of want) {
    try {
      const dump = await /** @type {any} */ (tablet.transport).getJson(`/api/v1/inspections/${enc(iid)}/export.json`);
      for (const m of dump.inspection?.team || []) people[m.user_id] = m.name;
    } catch {
      /* offline or refused: "another inspector" until the next sync */
    }
  }
  await tablet.setMeta({ people });
}

/** Persistent storage, and a warning when the quota is near. */
async function checkStorage() {
  const storage = navigator.storage;
  if (!storage) return;
  try {
    if (storage.persist && !(await storage.persisted())) await storage.persist();
  } catch {
    /* not granted: the warning below still helps */
  }
  try {
    let { usage = 0, quota = 0 } = await storage.estimate();
    if (quota && usage / quota >= QUOTA_WARN && (await tablet.releaseUploaded())) {
      // the photos the server holds leave the tablet (shown from the server from now on)
      ({ usage = 0, quota = 0 } = await storage.estimate());
    }
    ui.quota = quota && usage / quota >= QUOTA_WARN ? t("quota_near", { used: bytes(usage), quota: bytes(quota) }) : "";
  } catch {
    ui.quota = "";
  }
  void renderBar();
}

// --- the sync bar -----------------------------------------------------------------------

async function renderBar() {
  const bar = /** @type {HTMLElement} */ (document.getElementById("bar"));
  if (!tablet) return;
  bar.dataset.syncs = String(ui.syncs);
  bar.dataset.syncing = String(ui.syncing);
  const langButton = h(
    "button",
    {
      class: "lang",
      type: "button",
      title: t("lang_other_name"),
      onclick: () => {
        setLang(currentLang() === "zh" ? "en" : "zh");
        document.documentElement.lang = currentLang() === "zh" ? "zh-CN" : "en";
        void renderBar();
        void renderMain();
      },
    },
    t("lang_other"),
  );
  if (!tablet.loggedIn) {
    bar.replaceChildren(h("a", { class: "brand", href: "#/" }, t("app_name")), h("span", { class: "grow" }), langButton);
    return;
  }
  const s = await tablet.status();
  const uploads = Object.values(ui.uploads).filter((u) => u.sent < u.total);
  const pendingPhotos = s.evidencePending;
  let uploadText = "";
  if (uploads.length) {
    const sent = uploads.reduce((n, u) => n + u.sent, 0);
    const total = uploads.reduce((n, u) => n + u.total, 0);
    const all = Object.keys(ui.uploads).length;
    uploadText = t("uploading", { done: all - uploads.length + 1, total: all, pct: Math.floor((100 * sent) / Math.max(total, 1)) });
  }
  const attention = s.rejected + s.openConflictRecords;
  const parts = [
    h("a", { class: "brand", href: "#/" }, t("app_name")),
    h("span", { class: `net ${ui.online ? "on" : "off"}`, id: "net" }, ui.online ? t("online") : t("offline")),
    h("span", { class: `pending ${s.pending ? "has" : ""}`, id: "pending" }, s.pending ? t("pending", { n: s.pending }) : t("all_synced")),
    h("span", { class: "last", id: "last-sync" }, s.lastSync ? t("last_sync", { time: when(s.lastSync) }) : t("never_synced")),
    uploadText ? h("span", { class: "uploads", id: "uploads" }, uploadText) : pendingPhotos ? h("span", { class: "uploads", id: "uploads" }, t("photos_waiting", { n: pendingPhotos })) : null,
    s.evidenceRefused ? h("span", { class: "warn" }, t("photos_refused", { n: s.evidenceRefused })) : null,
    attention ? h("a", { class: "attention", id: "attention", href: "#/attention" }, t("problems_here", { n: attention })) : null,
    h("span", { class: "grow" }),
    h(
      "button",
      { type: "button", id: "sync-now", disabled: ui.syncing || !ui.online, onclick: () => requestSync() },
      ui.syncing ? t("syncing") : t("sync_now"),
    ),
    langButton,
    h(
      "button",
      {
        type: "button",
        class: "quiet",
        onclick: async () => {
          stopWatching();
          await tablet.logout();
          go("#/login");
        },
      },
      t("logout"),
    ),
  ];
  bar.replaceChildren(...parts.filter((x) => x !== null));
  const notice = /** @type {HTMLElement} */ (document.getElementById("notice"));
  const messages = [ui.syncError, ui.quota].filter(Boolean);
  notice.hidden = !messages.length;
  notice.replaceChildren(...messages.map((m) => h("p", null, m)));
}

// --- the main view ------------------------------------------------------------------------

let rendering = Promise.resolve();
/** Draw the view of the URL; `auto`: a refresh nobody asked for, dropped if the inspector
 * started typing meanwhile (it comes back when they leave the field). */
function renderMain(auto = false) {
  rendering = rendering.then(() => doRenderMain(auto)).catch((err) => {
    console.error(err);
    const main = /** @type {HTMLElement} */ (document.getElementById("main"));
    main.replaceChildren(h("p", { class: "error" }, t("error", { detail: err.message || err })));
  });
  return rendering;
}

/** @param {boolean} auto */
async function doRenderMain(auto) {
  ui.mainStale = false;
  const main = /** @type {HTMLElement} */ (document.getElementById("main"));
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (!tablet.loggedIn || parts[0] === "login") {
    if (tablet.loggedIn) return go("#/");
    return main.replaceChildren(loginView());
  }
  const scrollY = window.scrollY;
  const same = main.dataset.view === location.hash;
  /** @type {HTMLElement} */
  let view;
  if (parts[0] === "i" && parts[1]) {
    const iid = parts[1];
    if (parts[2] === "l" && parts[3] && parts[4] === "sign") view = await signoffView(iid, parts[3]);
    else if (parts[2] === "l" && parts[3]) view = await checklistView(iid, parts[3]);
    else if (parts[2] === "f" && parts[3]) view = await findingView(iid, parts[3]);
    else view = await inspectionView(iid);
  } else if (parts[0] === "attention") {
    view = await attentionView();
  } else {
    view = await inspectionsView();
  }
  if (auto && editing()) {
    ui.mainStale = true;
    return;
  }
  ui.dirty = false;
  main.replaceChildren(view);
  main.dataset.view = location.hash;
  const at = parts[2] === "l" && parts[4]?.startsWith("@") ? document.getElementById(`item-${parts[4].slice(1)}`) : null;
  if (at) at.scrollIntoView({ block: "center" });
  else if (same) window.scrollTo(0, scrollY);
  else window.scrollTo(0, 0);
  if (ui.mainStale) refreshMainSoon(); // the data changed while this view was read
}

// --- login --------------------------------------------------------------------------------

function loginView() {
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const form = h(
    "form",
    {
      class: "card login",
      onsubmit: async (/** @type {SubmitEvent} */ e) => {
        e.preventDefault();
        const data = new FormData(/** @type {HTMLFormElement} */ (e.target));
        const button = /** @type {HTMLButtonElement} */ (form.querySelector("button"));
        button.disabled = true;
        button.textContent = t("signing_in");
        error.hidden = true;
        try {
          const tokens = await tablet.login(String(data.get("username")), String(data.get("password")), {
            deviceName: String(data.get("device_name") || t("device_default")),
            platform: "web",
          });
          if (!tokens.display_name) {
            // a server older than the login answer's display_name: ask who we are
            try {
              const me = await /** @type {any} */ (tablet.transport).getJson("/api/v1/auth/me");
              await tablet.setMeta({ display_name: me.display_name, user_id: me.user_id });
            } catch {
              /* then the username stands for the name (accountName) */
            }
          }
          ui.notice = "";
          void checkStorage();
          startWatching();
          requestSync();
          go("#/");
        } catch (err) {
          if (err instanceof DeviceRevoked) {
            await tablet.wipe();
            ui.notice = t("revoked");
            error.textContent = t("revoked");
          } else if (err instanceof TransportError) {
            error.textContent = t("login_offline");
          } else {
            const e2 = /** @type {any} */ (err);
            error.textContent = t("login_failed", { detail: e2.problem?.detail || e2.message });
          }
          error.hidden = false;
          button.disabled = false;
          button.textContent = t("sign_in");
        }
      },
    },
    h("h1", null, t("login_title")),
    ui.notice ? h("p", { class: "notice-box", id: "login-notice", role: "alert" }, ui.notice) : null,
    h("p", { class: "muted" }, t("login_intro")),
    h("label", null, t("username"), h("input", { name: "username", autocomplete: "username", required: true, value: tablet.meta.username || "" })),
    h("label", null, t("password"), h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    tablet.deviceId ? null : h("label", null, t("device_name"), h("input", { name: "device_name", value: t("device_default") })),
    error,
    h("button", { type: "submit", class: "primary" }, t("sign_in")),
  );
  return form;
}

// --- labels ---------------------------------------------------------------------------

/** @param {string} prefix @param {string} value */
function label(prefix, value) {
  const key = `${prefix}_${value}`;
  const text = t(key);
  return text === key ? value : text;
}

/** Both labels of a classification. @param {string | null | undefined} cls */
function classificationText(cls) {
  if (!cls || !(cls in CLASSIFICATION_LABELS)) return t("unclassified");
  return `${t("pics")} ${t(`cls_${cls}`)} · ${t("nmpa")} ${t(`nmpa_${cls}`)}`;
}

/**
 * A classification in open conflict is disputed: shown as such, never as one of its values.
 * @param {string | null | undefined} cls
 * @param {string[] | undefined} [openConflicts]
 */
function classificationBadge(cls, openConflicts) {
  if ((openConflicts || []).includes("classification")) return h("span", { class: "badge cls-disputed" }, t("disputed"));
  return h("span", { class: `badge cls-${cls || "none"}` }, classificationText(cls));
}

/** The stage label of a link: its pinned checklist's title, else the stage type. */
function linkLabel(/** @type {any} */ link, /** @type {any} */ content) {
  if (content && content.title) return tx(content.title);
  return label("stage", link?.stage_type || "");
}

// --- my inspections ----------------------------------------------------------------------

async function inspectionsView() {
  const inspections = await tablet.records("inspection");
  const sites = await tablet.records("site");
  const assignments = await tablet.records("assignment", (a) => a.user_id === tablet.meta.user_id);
  const findings = await tablet.records("finding");
  const roles = new Map([...assignments.values()].map((a) => [a.inspection_id, a.role]));
  const list = [...inspections.entries()].sort((a, b) => String(a[1].planned_start).localeCompare(String(b[1].planned_start)));
  return h(
    "section",
    { class: "view" },
    h("h1", null, t("my_inspections")),
    list.length === 0 ? h("p", { class: "empty" }, t("no_inspections")) : null,
    h(
      "ul",
      { class: "cards" },
      list.map(([iid, d]) => {
        const site = sites.get(d.site_id) || {};
        const n = [...findings.values()].filter((f) => f.inspection_id === iid).length;
        return h(
          "li",
          null,
          h(
            "a",
            { class: "card inspection", href: `#/i/${enc(iid)}`, dataset: { inspection: iid } },
            h("h2", null, d.title),
            h("p", null, h("span", { class: `status st-${d.status}` }, label("istatus", d.status)), " · ", label("itype", d.type)),
            h("p", null, `${t("site")}: ${site.name || ""}${site.province ? ` (${site.province})` : ""}`),
            h("p", null, `${t("dates")}: ${day(d.planned_start)} – ${day(d.planned_end)}`),
            roles.has(iid) ? h("p", null, `${t("your_role")}: ${label("role", roles.get(iid))}`) : null,
            h("p", { class: "muted" }, `${t("findings")}: ${n}`),
          ),
        );
      }),
    ),
  );
}

// --- checklists: shared reads ---------------------------------------------------------

/**
 * The inspection, its links (with their pinned checklist) and local answers.
 * @param {string} iid
 */
async function loadInspection(iid) {
  const insp = await tablet.view("inspection", iid);
  if (!insp) return null;
  const chain = (await tablet.view("chain", insp.chain_id)) || { links: [] };
  const site = (await tablet.view("site", insp.site_id)) || {};
  /** @type {Array<{id: string, link: any, version: string | null, content: any}>} */
  const links = [];
  for (const lid of insp.link_ids || []) {
    const link = (chain.links || []).find((/** @type {any} */ l) => l.id === lid) || { id: lid };
    const version = (insp.pins || {})[lid] || null;
    const rec = version ? await tablet.view("checklist_version", version) : null;
    links.push({ id: lid, link, version, content: rec && rec.content ? rec.content : null });
  }
  const responses = await tablet.records("response", (_d, id) => id.startsWith(`${iid}~`));
  return { insp, chain, site, links, responses };
}

/** @param {any} v */
function answered(v) {
  if (v === null || v === undefined || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

/**
 * Whether an item shows, given its `show_if` and the answers of the same repeat.
 * @param {any} item @param {(key: string) => any} valueOf
 */
function visible(item, valueOf) {
  const cond = item.show_if;
  if (!cond) return true;
  const v = valueOf(cond.item);
  const values = Array.isArray(v) ? v : [v];
  return values.some((x) => cond.answer_in.includes(String(x)));
}

/**
 * The repeats of a section on screen: 0..n-1 where n covers every answered repeat.
 * @param {string} iid @param {string} lid @param {any} section @param {Map<string, any>} responses
 */
function repeatsOf(iid, lid, section, responses) {
  if (!section.repeatable) return [0];
  let n = 1;
  const keys = new Set(section.items.map((/** @type {any} */ i) => i.key));
  for (const id of responses.keys()) {
    const [, l, item, rep] = id.split("~");
    if (l === lid && keys.has(item)) n = Math.max(n, Number(rep) + 1);
  }
  n = Math.max(n, ui.extraRepeats[`${iid}~${lid}~${section.key}`] || 0);
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * The required items of a link not answered yet: `{section, item, repeat}`.
 * @param {string} iid @param {string} lid @param {any} content @param {Map<string, any>} responses
 */
function missingAnswers(iid, lid, content, responses) {
  const out = [];
  for (const section of content.sections || []) {
    for (const repeat of repeatsOf(iid, lid, section, responses)) {
      const valueOf = (/** @type {string} */ key) => responses.get(responseId(iid, lid, key, section.items.some((/** @type {any} */ i) => i.key === key) ? repeat : 0))?.value;
      for (const item of section.items) {
        if (item.required === false || !visible(item, valueOf)) continue;
        if (!answered(valueOf(item.key))) out.push({ section, item, repeat });
      }
    }
  }
  return out;
}

/** @param {any} content */
function requiredCount(content) {
  let n = 0;
  for (const s of content.sections || []) for (const i of s.items) if (i.required !== false && !i.show_if) n++;
  return n;
}

// --- an inspection ----------------------------------------------------------------------

/** @param {string} iid */
async function inspectionView(iid) {
  const data = await loadInspection(iid);
  if (!data) return h("section", { class: "view" }, backLink("#/"), h("p", { class: "empty" }, t("no_inspections")));
  const { insp, site, links, responses } = data;
  const findings = await tablet.records("finding", (f) => f.inspection_id === iid);
  const signoffs = await tablet.records("signoff", (s) => s.inspection_id === iid);
  const pending = await pendingIds();
  return h(
    "section",
    { class: "view" },
    backLink("#/"),
    h("h1", null, insp.title),
    h("p", null, h("span", { class: `status st-${insp.status}` }, label("istatus", insp.status)), " · ", label("itype", insp.type)),
    h("p", null, `${t("site")}: ${site.name || ""}${site.address ? `, ${site.address}` : ""}`),
    h("p", null, `${t("dates")}: ${day(insp.planned_start)} – ${day(insp.planned_end)}`),
    h("h2", null, t("links")),
    h(
      "ul",
      { class: "cards" },
      links.map(({ id, link, content }) => {
        const signed = [...signoffs.values()].filter((s) => s.scope === `link:${id}`);
        const last = signed.sort((a, b) => String(a.signed_at).localeCompare(String(b.signed_at))).pop();
        const missing = content ? missingAnswers(iid, id, content, responses).length : 0;
        const total = content ? requiredCount(content) : 0;
        return h(
          "li",
          { class: "card link", dataset: { link: id } },
          h("h3", null, linkLabel(link, content)),
          link.hands_over ? h("p", { class: "muted" }, link.hands_over) : null,
          !data.insp.pins?.[id]
            ? h("p", { class: "muted" }, t("not_started"))
            : !content
              ? h("p", { class: "muted" }, t("checklist_missing"))
              : [
                  h("p", null, t("answered", { n: Math.max(total - missing, 0), total })),
                  h("p", { class: "muted signed" }, last ? t("signed_by", { name: last.signer_name, meaning: label("meaning", last.meaning), time: when(last.signed_at) }) : t("signed_none")),
                  h(
                    "div",
                    { class: "actions" },
                    h("a", { class: "button primary", href: `#/i/${enc(iid)}/l/${enc(id)}` }, t("open_checklist")),
                    h("a", { class: "button", href: `#/i/${enc(iid)}/l/${enc(id)}/sign` }, t("sign_off")),
                  ),
                ],
        );
      }),
    ),
    h("h2", null, t("findings")),
    h("div", { class: "actions" }, h("a", { class: "button primary", id: "new-finding", href: `#/i/${enc(iid)}/f/new` }, t("new_finding"))),
    findings.size === 0 ? h("p", { class: "empty" }, t("no_findings")) : null,
    h(
      "ul",
      { class: "cards findings" },
      [...findings.entries()].map(([fid, f]) =>
        h(
          "li",
          null,
          h(
            "a",
            { class: "card finding", href: `#/i/${enc(iid)}/f/${enc(fid)}`, dataset: { finding: fid } },
            h("h3", null, f.title || "—"),
            h("p", null, classificationBadge(f.classification, f.open_conflicts), " ", h("span", { class: "status" }, label("fstatus", f.status || "draft"))),
            (f.open_conflicts || []).length ? h("p", { class: "conflict-flag" }, (f.open_conflicts || []).map((/** @type {string} */ x) => t("conflict_title", { field: label("field", x) })).join("; ")) : null,
            pending.has(`finding:${fid}`) ? h("p", { class: "tag" }, t("not_synced")) : null,
          ),
        ),
      ),
    ),
  );
}

/** @param {string} href */
function backLink(href) {
  return h("a", { class: "back", href }, `← ${t("back")}`);
}

async function pendingIds() {
  return new Set((await tablet.pending()).map((p) => `${p.kind}:${p.id}`));
}

// --- conflicts and rejections, where they happened -------------------------------------------

/**
 * How a value reads for people: an answer's label, a classification's two labels.
 * @param {string} field @param {any} value @param {any} [item]
 */
function show(field, value, item) {
  if (value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)) return t("empty_value");
  if (field === "classification") return classificationText(value);
  if (field === "value" && item) {
    const one = (/** @type {any} */ v) => {
      if (item.answer === "yes_no_na") return t(String(v));
      const o = (item.options || []).find((/** @type {any} */ x) => x.value === v);
      return o ? tx(o.label) : String(v);
    };
    const text = Array.isArray(value) ? value.map(one).join(", ") : one(value);
    return item.unit && item.answer === "number" ? `${text} ${item.unit}` : text;
  }
  if (field === "status") return label("fstatus", value);
  if (Array.isArray(value)) return value.map((v) => (typeof v === "object" ? Object.values(v).join(" ") : String(v))).join(", ");
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/**
 * The conflict records of a record (open and resolved), each as a box with every value.
 * @param {Map<string, any>} conflicts @param {string} kind @param {string} id @param {any} [item]
 */
function conflictBoxes(conflicts, kind, id, item) {
  const mine = [...conflicts.entries()].filter(([, c]) => c.record_kind === kind && c.record_id === id);
  return mine.map(([cid, c]) => {
    const resolved = c.status === "resolved";
    return h(
      "div",
      { class: `conflict ${resolved ? "resolved" : "open"}`, dataset: { conflict: cid, field: c.field } },
      h("h4", null, t("conflict_title", { field: label("field", c.field) })),
      h(
        "ul",
        null,
        (c.values || []).map((/** @type {any} */ v) => {
          const who =
            v.by === tablet.meta.user_id
              ? v.device === tablet.deviceId
                ? t("conflict_by_you")
                : t("conflict_by_you_other")
              : (tablet.meta.people || {})[v.by] || t("conflict_by_other");
          return h("li", { class: "value" }, h("strong", null, show(c.field, v.value, item)), " — ", t("conflict_at", { who, time: when(v.device_time || c.opened_at) }));
        }),
      ),
      resolved
        ? h("p", { class: "resolution" }, t("conflict_resolved", { value: show(c.field, c.resolution?.value, item), reason: c.resolution?.reason || "" }))
        : [
            c.flagged ? null : h("p", null, t("conflict_kept", { value: show(c.field, c.winner, item) })),
            h("p", { class: "muted" }, c.field === "_deleted" ? t("conflict_delete") : c.flagged ? t("conflict_flagged") : t("conflict_lww")),
          ],
    );
  });
}

/**
 * The rejected changes of a record: what was sent, the reason in plain words and the
 * server's message, what the record holds now.
 * @param {any[]} rejected @param {string} kind @param {string} id @param {any} current @param {any} [item]
 */
function rejectionBoxes(rejected, kind, id, current, item) {
  return rejected
    .filter((r) => r.kind === kind && r.id === id)
    .map((r) => {
      const d = r.detail || {};
      const field = d.field && d.field in (r.sent || {}) ? d.field : Object.keys(r.sent || {})[0] || "value";
      const plain = t(`code_${d.code}`) === `code_${d.code}` ? t("code_other") : t(`code_${d.code}`);
      return h(
        "div",
        { class: "rejected", role: "alert", dataset: { mid: r.mid, code: d.code || "" } },
        h("h4", null, t("rejected_title")),
        h("p", null, t("rejected_body", { sent: show(field, (r.sent || {})[field], item), why: plain })),
        d.message ? h("p", { class: "reason" }, d.message) : null,
        h("p", null, t("rejected_now", { now: show(field, current ? current[field] : null, item) })),
        h(
          "button",
          {
            type: "button",
            onclick: async () => {
              await tablet.dismiss(r.mid);
              void renderMain();
            },
          },
          t("dismiss"),
        ),
      );
    });
}

/** The checklist of a link, scrolled to one item. */
function itemHref(/** @type {string} */ iid, /** @type {string} */ lid, /** @type {string} */ key, /** @type {number} */ repeat) {
  return `#/i/${enc(iid)}/l/${enc(lid)}/${enc(`@${key}-${repeat}`)}`;
}

/** Where a record is shown: a finding's page, an answer's item in its checklist. */
function recordHref(/** @type {string} */ kind, /** @type {string} */ id, /** @type {any} */ data) {
  if (kind === "response") {
    const [iid, lid, key, rep] = id.split("~");
    return itemHref(iid, lid, key, Number(rep));
  }
  if (kind === "finding" && data?.inspection_id) return `#/i/${enc(data.inspection_id)}/f/${enc(id)}`;
  if (kind === "signoff" && data?.inspection_id) return `#/i/${enc(data.inspection_id)}`;
  return "#/";
}

/** The prompt of the item an answer answers (its stage and its repeat), from the pinned checklist. @param {string} rid */
async function itemPrompt(rid) {
  const [iid, lid, key, rep] = rid.split("~");
  const insp = await tablet.view("inspection", iid);
  const version = insp?.pins?.[lid];
  const content = version ? (await tablet.view("checklist_version", version))?.content : null;
  for (const section of content?.sections || []) {
    const item = section.items.find((/** @type {any} */ i) => i.key === key);
    if (item) return `${tx(content.title)} — ${tx(section.title)}${section.repeatable ? ` ${Number(rep) + 1}` : ""}: ${tx(item.prompt)}`;
  }
  return key;
}

/** Everything that needs the inspector: rejected changes, open conflicts; each a link to where it happened. */
async function attentionView() {
  const rejected = await tablet.results("rejected");
  const conflicts = await tablet.records("conflict", (c) => c.status === "open");
  const findings = await tablet.records("finding");
  /** @type {Map<string, string>} what each record is called: a finding's title, an answer's prompt */
  const names = new Map();
  for (const [kind, id] of [...rejected.map((r) => [r.kind, r.id]), ...[...conflicts.values()].map((c) => [c.record_kind, c.record_id])]) {
    if (kind === "finding") names.set(id, findings.get(id)?.title || "—");
    else if (kind === "response") names.set(id, await itemPrompt(id));
  }
  /** @param {string} _kind @param {string} id */
  const title = (_kind, id) => names.get(id) || "";
  return h(
    "section",
    { class: "view" },
    backLink("#/"),
    h("h1", null, t("attention_title")),
    rejected.length + conflicts.size === 0 ? h("p", { class: "empty" }, t("attention_none")) : null,
    h(
      "ul",
      { class: "cards attention-list" },
      rejected.map((r) =>
        h(
          "li",
          null,
          h(
            "a",
            { class: "card rejected", href: recordHref(r.kind, r.id, r.kind === "finding" ? findings.get(r.id) || r.sent : r.sent) },
            h("h3", null, t("rejected_title")),
            h("p", null, `${label("kind", r.kind)}: ${title(r.kind, r.id)}`),
            h("p", { class: "reason" }, r.detail?.message || ""),
          ),
        ),
      ),
      [...conflicts.entries()].map(([cid, c]) =>
        h(
          "li",
          null,
          h(
            "a",
            { class: "card conflict", href: recordHref(c.record_kind, c.record_id, { inspection_id: c.inspection_id }), dataset: { conflict: cid } },
            h("h3", null, t("conflict_title", { field: label("field", c.field) })),
            h("p", null, `${label("kind", c.record_kind)}: ${title(c.record_kind, c.record_id)}`),
            h("p", { class: "muted" }, c.flagged ? t("conflict_flagged") : t("conflict_lww")),
          ),
        ),
      ),
    ),
  );
}

// --- a checklist -------------------------------------------------------------------------------

/** @param {string} iid @param {string} lid */
async function checklistView(iid, lid) {
  const data = await loadInspection(iid);
  const entry = data?.links.find((l) => l.id === lid);
  if (!data || !entry || !entry.content) {
    return h("section", { class: "view" }, backLink(`#/i/${enc(iid)}`), h("p", { class: "empty" }, data?.insp.pins?.[lid] ? t("checklist_missing") : t("not_started")));
  }
  const { content } = entry;
  const ctx = {
    iid,
    lid,
    responses: data.responses,
    pending: await pendingIds(),
    conflicts: await tablet.records("conflict", (c) => c.record_kind === "response" && c.inspection_id === iid),
    rejected: await tablet.results("rejected"),
    evidence: await tablet.evidence(),
  };
  return h(
    "section",
    { class: "view checklist" },
    backLink(`#/i/${enc(iid)}`),
    h("h1", null, linkLabel(entry.link, content)),
    h("p", { class: "muted" }, data.insp.title),
    (content.sections || []).map((/** @type {any} */ section) => {
      const repeats = repeatsOf(iid, lid, section, data.responses);
      const repeatLabel = tx(section.repeat_label) || t("repeat_default");
      return h(
        "section",
        { class: "section", dataset: { section: section.key } },
        h("h2", null, tx(section.title)),
        section.description ? h("p", { class: "muted" }, tx(section.description)) : null,
        repeats.map((repeat) =>
          h(
            "div",
            { class: "repeat", dataset: { repeat: String(repeat) } },
            section.repeatable ? h("h3", null, t("repeat_of", { label: repeatLabel, n: repeat + 1 })) : null,
            section.items.map((/** @type {any} */ item) => itemView(ctx, section, item, repeat)),
          ),
        ),
        section.repeatable
          ? h(
              "button",
              {
                type: "button",
                class: "add-repeat",
                onclick: () => {
                  const key = `${iid}~${lid}~${section.key}`;
                  ui.extraRepeats[key] = repeats.length + 1;
                  void renderMain();
                },
              },
              t("add_repeat", { label: repeatLabel }),
            )
          : null,
      );
    }),
  );
}

/**
 * One item in one repeat: prompt, limits, the control its answer type needs, note,
 * references, and what happened to it (not synced yet, rejected, in conflict).
 * @param {any} ctx @param {any} section @param {any} item @param {number} repeat
 */
function itemView(ctx, section, item, repeat) {
  const { iid, lid } = ctx;
  const rid = responseId(iid, lid, item.key, repeat);
  const current = ctx.responses.get(rid) || null;
  const valueOf = (/** @type {string} */ key) => ctx.responses.get(responseId(iid, lid, key, section.items.some((/** @type {any} */ i) => i.key === key) ? repeat : 0))?.value;
  if (!visible(item, valueOf)) return null;
  const value = current ? current.value : null;
  const name = `${item.key}~${repeat}`;
  /** @param {Record<string, any>} fields */
  const save = async (fields) => {
    const held = ctx.responses.get(rid) || {};
    if (Object.entries(fields).every(([k, v]) => JSON.stringify(held[k] ?? null) === JSON.stringify(v))) return;
    ctx.responses.set(rid, { ...held, ...fields }); // before the await: a second event is a no-op
    await tablet.edit("response", rid, fields);
    if (section.items.some((/** @type {any} */ i) => i.show_if && i.show_if.item === item.key)) {
      void renderMain(); // an item shown only for some answers of this one
    } else {
      block.replaceWith(itemView({ ...ctx, pending: new Set([...ctx.pending, `response:${rid}`]) }, section, item, repeat) || h("span"));
    }
    requestSync(1000);
  };
  /** @type {any} */
  let control;
  const kind = item.answer;
  if (kind === "yes_no_na" || kind === "single_choice") {
    const options = kind === "yes_no_na" ? ["yes", "no", "na"].map((v) => ({ value: v, text: t(v) })) : (item.options || []).map((/** @type {any} */ o) => ({ value: o.value, text: tx(o.label) }));
    control = h(
      "div",
      { class: "choices", role: "radiogroup" },
      options.map((/** @type {any} */ o) =>
        h(
          "label",
          { class: `choice ${value === o.value ? "on" : ""}` },
          h("input", { type: "radio", name, value: o.value, checked: value === o.value, onchange: () => save({ value: o.value }) }),
          o.text,
        ),
      ),
    );
  } else if (kind === "multi_choice") {
    const held = Array.isArray(value) ? value : [];
    control = h(
      "div",
      { class: "choices" },
      (item.options || []).map((/** @type {any} */ o) =>
        h(
          "label",
          { class: `choice ${held.includes(o.value) ? "on" : ""}` },
          h("input", {
            type: "checkbox",
            name,
            value: o.value,
            checked: held.includes(o.value),
            onchange: () => {
              const boxes = /** @type {NodeListOf<HTMLInputElement>} */ (block.querySelectorAll(`input[type=checkbox][name="${CSS.escape(name)}"]`));
              save({ value: [...boxes].filter((b) => b.checked).map((b) => b.value) });
            },
          }),
          tx(o.label),
        ),
      ),
    );
  } else if (kind === "number") {
    const unit = item.unit || "";
    const limits =
      item.min !== undefined && item.min !== null && item.max !== undefined && item.max !== null
        ? t("limits_both", { min: item.min, max: item.max, unit })
        : item.min !== undefined && item.min !== null
          ? t("limits_min", { min: item.min, unit })
          : item.max !== undefined && item.max !== null
            ? t("limits_max", { max: item.max, unit })
            : unit
              ? t("unit_only", { unit })
              : "";
    const outside = typeof value === "number" && ((item.min != null && value < item.min) || (item.max != null && value > item.max));
    control = h(
      "div",
      { class: "number" },
      h("input", {
        type: "number",
        name,
        inputmode: "decimal",
        step: "any",
        value: typeof value === "number" ? String(value) : "",
        onchange: (/** @type {Event} */ e) => {
          const raw = /** @type {HTMLInputElement} */ (e.target).value.trim();
          save({ value: raw === "" ? null : Number(raw) });
        },
      }),
      unit ? h("span", { class: "unit" }, unit) : null,
      limits ? h("span", { class: "limits" }, limits) : null,
      outside ? h("span", { class: "warn" }, t("outside_limits")) : null,
    );
  } else if (kind === "date") {
    control = h("input", { type: "date", name, value: typeof value === "string" ? value : "", onchange: (/** @type {Event} */ e) => save({ value: /** @type {HTMLInputElement} */ (e.target).value || null }) });
  } else {
    // text, and a photo item's caption
    control = h("textarea", {
      name,
      rows: 2,
      placeholder: kind === "photo" ? t("photo_caption") : "",
      onchange: (/** @type {Event} */ e) => save({ value: /** @type {HTMLTextAreaElement} */ (e.target).value || null }),
      value: typeof value === "string" ? value : "",
    });
  }
  const rule = item.evidence;
  const wantsPhoto = kind === "photo" || (rule && rule.require !== "note");
  const photos = current?.evidence || [];
  const block = h(
    "article",
    { class: `item ${answered(value) ? "done" : ""}`, id: `item-${item.key}-${repeat}`, dataset: { item: item.key, repeat: String(repeat) } },
    h("p", { class: "prompt" }, tx(item.prompt), " ", h("span", { class: `req ${item.required === false ? "opt" : ""}` }, item.required === false ? t("optional") : t("required"))),
    control,
    value !== null && value !== undefined && kind !== "text" && kind !== "photo"
      ? h("button", { type: "button", class: "quiet clear", onclick: () => save({ value: null }) }, t("clear"))
      : null,
    rule ? h("p", { class: "rule" }, t("evidence_rule", { answers: rule.when_answer_in.map((/** @type {string} */ a) => (kind === "yes_no_na" ? t(a) : a)).join(" / "), what: t(`need_${rule.require}`) })) : null,
    h(
      "label",
      { class: "note" },
      t("note"),
      h("textarea", { name: `note:${name}`, rows: 1, value: current?.note || "", onchange: (/** @type {Event} */ e) => save({ note: /** @type {HTMLTextAreaElement} */ (e.target).value || null }) }),
    ),
    wantsPhoto
      ? h(
          "div",
          { class: "item-photos" },
          photoStrip(photos, ctx.evidence, iid),
          photoInput(`photo:${name}`, async (hashes) => save({ evidence: [...new Set([...photos, ...hashes])] }), iid),
        )
      : null,
    item.guidance ? h("details", null, h("summary", null, t("guidance")), h("p", null, tx(item.guidance))) : null,
    (item.references || []).length ? h("p", { class: "refs" }, `${t("refs_short")}: `, item.references.map((/** @type {any} */ r) => `${r.document} ${r.section}`).join("; ")) : null,
    ctx.pending.has(`response:${rid}`) ? h("span", { class: "tag" }, t("not_synced")) : null,
    rejectionBoxes(ctx.rejected, "response", rid, current, item),
    conflictBoxes(ctx.conflicts, "response", rid, item),
  );
  return block;
}

// --- photos ----------------------------------------------------------------------------------

/**
 * A file input for the camera or the files; each file is kept in IndexedDB (until
 * uploaded) and its SHA-256 handed to `then`.
 * @param {string} name @param {(hashes: string[]) => Promise<any> | void} then @param {string} iid
 */
function photoInput(name, then, iid) {
  return h(
    "label",
    { class: "button photo-input" },
    t("add_photo"),
    h("input", {
      type: "file",
      name,
      accept: "image/*",
      capture: "environment",
      multiple: true,
      onchange: async (/** @type {Event} */ e) => {
        const input = /** @type {HTMLInputElement} */ (e.target);
        const hashes = [];
        for (const file of input.files || []) {
          hashes.push(await tablet.attach(file, iid, { filename: file.name, type: file.type, capturedAt: new Date().toISOString() }));
        }
        input.value = "";
        void checkStorage();
        await then(hashes);
      },
    }),
  );
}

/** @param {string[]} hashes @param {any[]} evidence @param {string} iid */
function photoStrip(hashes, evidence, iid) {
  return h(
    "ul",
    { class: "photos" },
    hashes.map((sha) => {
      const row = evidence.find((r) => r.sha256 === sha && r.inspection_id === iid);
      const img = h("img", { alt: sha.slice(0, 12), dataset: { sha } });
      void thumb(sha).then((url) => url && img.setAttribute("src", url));
      const progress = ui.uploads[`${sha}:${iid}`];
      const state = !row
        ? t("photo_not_here")
        : row.state === "uploaded"
          ? t("photo_uploaded")
          : row.state === "refused"
            ? t("photo_refused", { detail: row.detail })
            : progress && progress.sent < progress.total
              ? `${Math.floor((100 * progress.sent) / progress.total)}%`
              : t("photo_pending");
      return h("li", { dataset: { sha, state: row ? row.state : "elsewhere" } }, img, h("span", null, state));
    }),
  );
}

/**
 * An object URL of a photo: its bytes on the tablet, else (online) the server's
 * thumbnail, fetched with the tablet's token.
 * @param {string} sha
 */
async function thumb(sha) {
  if (thumbs.has(sha)) return thumbs.get(sha);
  const file = await tablet.file(sha);
  /** @type {Blob | null} */
  let blob = file ? new Blob([/** @type {BlobPart} */ (file.bytes)], { type: file.type }) : null;
  if (!blob && ui.online) {
    try {
      const r = await /** @type {any} */ (tablet.transport).authed(`/api/v1/evidence/${sha}/thumbnail`);
      if (r.ok) blob = await r.blob();
    } catch {
      /* not there (yet): no picture */
    }
  }
  if (!blob) return null;
  const url = URL.createObjectURL(blob);
  thumbs.set(sha, url);
  return url;
}

// --- a finding ---------------------------------------------------------------------------------

const TABLET_STATUSES = ["draft", "submitted", "withdrawn"];

/** @param {string} iid @param {string} fid */
async function findingView(iid, fid) {
  const data = await loadInspection(iid);
  if (!data) return h("section", { class: "view" }, backLink("#/"));
  const isNew = fid === "new";
  const current = isNew ? null : await tablet.view("finding", fid);
  if (!isNew && !current) return h("section", { class: "view" }, backLink(`#/i/${enc(iid)}`), h("p", { class: "empty" }, t("finding_missing")));
  const f = current || { inspection_id: iid, title: "", objective_evidence: "", linked_items: [], references: [], evidence_hashes: [], classification: null, status: "draft" };
  const conflicts = isNew ? new Map() : await tablet.records("conflict", (c) => c.record_kind === "finding" && c.record_id === fid);
  const rejected = isNew ? [] : await tablet.results("rejected");
  const evidence = await tablet.evidence();
  const pending = await pendingIds();
  const form = {
    linked: [...(f.linked_items || [])],
    references: [...(f.references || [])],
    photos: [...(f.evidence_hashes || [])],
  };
  /** @type {Map<string, string>} item labels for linking, `link:item` */
  const items = new Map();
  for (const { id, link, content } of data.links) {
    if (!content) continue;
    for (const s of content.sections || []) for (const i of s.items) items.set(`${id}:${i.key}`, `${linkLabel(link, content)} — ${tx(i.prompt)}`);
  }
  const disputed = (f.open_conflicts || []).includes("classification");
  const fieldConflicts = (/** @type {string} */ field) => conflictBoxes(new Map([...conflicts].filter(([, c]) => c.field === field)), "finding", fid, null);
  const linkedList = h("ul", { class: "linked" });
  const refsList = h("ul", { class: "refs-list" });
  const photoBox = h("div", { class: "photo-box" });
  const drawLists = () => {
    linkedList.replaceChildren(...form.linked.map((ref) => h("li", null, items.get(ref) || ref)));
    refsList.replaceChildren(...form.references.map((r) => h("li", null, `${r.document} ${r.section}`)));
    photoBox.replaceChildren(photoStrip(form.photos, evidence, iid));
  };
  drawLists();
  const message = h("p", { class: "error", role: "alert", hidden: true });
  const el = h(
    "form",
    {
      class: "view finding-form",
      onsubmit: async (/** @type {SubmitEvent} */ e) => {
        e.preventDefault();
        const fd = new FormData(/** @type {HTMLFormElement} */ (e.target));
        const title = String(fd.get("title") || "").trim();
        if (!title) {
          message.textContent = t("title_required");
          message.hidden = false;
          return;
        }
        /** @type {Record<string, any>} */
        const next = {
          title,
          objective_evidence: String(fd.get("objective_evidence") || ""),
          // disputed and left unchosen: unchanged (both values wait for the supervisor)
          classification: fd.get("classification") ? String(fd.get("classification")) : disputed ? f.classification : null,
          status: String(fd.get("status") || f.status || "draft"),
          linked_items: form.linked,
          references: form.references,
          evidence_hashes: form.photos,
        };
        /** @type {Record<string, any>} */
        const changed = {};
        for (const [k, v] of Object.entries(next)) {
          const before = f[k] ?? (Array.isArray(v) ? [] : k === "objective_evidence" ? "" : null);
          if (JSON.stringify(before) !== JSON.stringify(v)) changed[k] = v;
        }
        if (!TABLET_STATUSES.includes(next.status)) delete changed.status;
        if (isNew) {
          const id = tablet.newId("f");
          await tablet.edit("finding", id, { inspection_id: iid, ...changed });
          requestSync(500);
          go(`#/i/${enc(iid)}/f/${enc(id)}`);
          return;
        }
        if (Object.keys(changed).length) await tablet.edit("finding", fid, changed);
        requestSync(500);
        message.textContent = t("saved");
        message.className = "ok";
        message.hidden = false;
        void renderMain();
      },
    },
    backLink(`#/i/${enc(iid)}`),
    h("h1", null, isNew ? t("new_finding") : f.title || "—"),
    !isNew && pending.has(`finding:${fid}`) ? h("p", { class: "tag" }, t("not_synced")) : null,
    !isNew && f.status && !TABLET_STATUSES.includes(f.status) ? h("p", { class: "status-box" }, label("fstatus", f.status)) : null,
    (f.comments || []).map((/** @type {any} */ c) => h("blockquote", { class: "comment" }, c.text, c.at ? h("small", null, ` — ${when(c.at)}`) : null)),
    rejectionBoxes(rejected, "finding", fid, current, null),
    fieldConflicts("_deleted"),
    h("label", null, t("title"), h("input", { name: "title", value: f.title || "", maxlength: 500, required: true })),
    fieldConflicts("title"),
    h(
      "fieldset",
      { class: "classification" },
      h("legend", null, t("classification")),
      disputed ? h("p", { class: "disputed-note" }, classificationBadge(f.classification, f.open_conflicts), " ", t("disputed_note")) : null,
      ["critical", "major", "other"].map((cls) =>
        h(
          "label",
          { class: `choice cls-${cls}` },
          h("input", { type: "radio", name: "classification", value: cls, checked: !disputed && f.classification === cls }),
          h("span", null, h("strong", null, `${t("pics")}: ${t(`cls_${cls}`)}`), h("br"), `${t("nmpa")}: ${t(`nmpa_${cls}`)}`),
        ),
      ),
    ),
    fieldConflicts("classification"),
    h("label", null, t("objective_evidence"), h("textarea", { name: "objective_evidence", rows: 5, value: f.objective_evidence || "" })),
    fieldConflicts("objective_evidence"),
    h("fieldset", null, h("legend", null, t("photos")), photoBox, photoInput("photo", (hashes) => {
      form.photos = [...new Set([...form.photos, ...hashes])];
      drawLists();
    }, iid)),
    h(
      "fieldset",
      null,
      h("legend", null, t("linked_items")),
      linkedList,
      h(
        "div",
        { class: "row" },
        h("select", { name: "link_item" }, h("option", { value: "" }, t("choose_item")), [...items.entries()].map(([k, v]) => h("option", { value: k }, v))),
        h(
          "button",
          {
            type: "button",
            onclick: () => {
              const sel = /** @type {HTMLSelectElement} */ (el.querySelector("select[name=link_item]"));
              if (sel.value && !form.linked.includes(sel.value)) form.linked.push(sel.value);
              sel.value = "";
              drawLists();
            },
          },
          t("add_item"),
        ),
      ),
    ),
    h(
      "fieldset",
      null,
      h("legend", null, t("references")),
      refsList,
      h(
        "div",
        { class: "row" },
        h("input", { name: "ref_document", placeholder: t("document") }),
        h("input", { name: "ref_section", placeholder: t("section") }),
        h(
          "button",
          {
            type: "button",
            onclick: () => {
              const doc = /** @type {HTMLInputElement} */ (el.querySelector("input[name=ref_document]"));
              const sec = /** @type {HTMLInputElement} */ (el.querySelector("input[name=ref_section]"));
              if (doc.value.trim()) form.references.push({ document: doc.value.trim(), section: sec.value.trim() });
              doc.value = sec.value = "";
              drawLists();
            },
          },
          t("add_reference"),
        ),
      ),
    ),
    h(
      "label",
      null,
      t("status"),
      h(
        "select",
        { name: "status" },
        TABLET_STATUSES.map((s) => h("option", { value: s, selected: (f.status || "draft") === s }, label("fstatus", s))),
      ),
    ),
    fieldConflicts("status"),
    message,
    h("div", { class: "actions sticky" }, h("button", { type: "submit", class: "primary", id: "save-finding" }, t("save"))),
  );
  return el;
}

// --- sign-off of a link ---------------------------------------------------------------------------

/** The name a signature prints: the account's own (from the login), never typed here. */
function accountName() {
  return String(tablet.meta.display_name || tablet.meta.username || "");
}

/** @param {string} iid @param {string} lid */
async function signoffView(iid, lid) {
  const data = await loadInspection(iid);
  const entry = data?.links.find((l) => l.id === lid);
  if (!data || !entry || !entry.content) return h("section", { class: "view" }, backLink(`#/i/${enc(iid)}`), h("p", null, t("not_started")));
  const missing = missingAnswers(iid, lid, entry.content, data.responses);
  const scope = `link:${lid}`;
  const signoffs = await tablet.records("signoff", (s) => s.inspection_id === iid && s.scope === scope);
  const error = h("p", { class: "error", role: "alert", id: "sign-error", hidden: true });
  /** @param {string} text */
  const refuse = (text) => {
    error.textContent = text;
    error.hidden = false;
  };
  // signing needs the password again, checked here against the verifier kept at the
  // last online login (app/lib/reauth.js); none, or locked: sign in again first
  const blocked = tablet.canSign ? "" : tablet.meta.signing_verifier ? t("reauth_locked") : t("reauth_missing");
  return h(
    "form",
    {
      class: "view signoff",
      onsubmit: async (/** @type {SubmitEvent} */ e) => {
        e.preventDefault();
        const form = /** @type {HTMLFormElement} */ (e.target);
        const fd = new FormData(form);
        const button = /** @type {HTMLButtonElement} */ (form.querySelector("#sign"));
        const label = button.textContent;
        button.disabled = true;
        button.textContent = t("reauth_checking");
        error.hidden = true;
        const check = await tablet.reauthenticate(String(fd.get("password") || ""));
        button.textContent = label;
        /** @type {HTMLInputElement} */ (form.querySelector("#sign-password")).value = "";
        if (!check.ok || !check.fields) {
          button.disabled = check.reason !== "wrong";
          refuse(check.reason === "wrong" ? t("reauth_wrong", { left: check.left }) : check.reason === "locked" ? t("reauth_locked") : t("reauth_missing"));
          if (check.reason !== "wrong") error.append(" ", h("a", { href: "#/login", id: "sign-in-again" }, t("sign_in_again")));
          return;
        }
        /** @type {Array<[string, string, Record<string, any>]>} */
        const signed = [];
        for (const kind of ["response", "finding"]) {
          for (const [id, d] of await tablet.records(kind, (d2, id2) => (kind === "response" ? id2.startsWith(`${iid}~`) : d2.inspection_id === iid))) {
            if (inScope(scope, kind, id, d)) signed.push([kind, id, d]);
          }
        }
        await tablet.edit("signoff", tablet.newId("s"), {
          inspection_id: iid,
          scope,
          // the server prints the account's own name whatever is sent; older servers
          // require one, and it shows on this tablet until the next sync
          signer_name: accountName(),
          meaning: String(fd.get("meaning") || "authored"),
          content_hash: await contentHash(signed),
          signed_at: new Date().toISOString(),
          // how the signer proved who they are at this moment (older tablets send none)
          ...check.fields,
          ...(missing.length ? { incomplete_reason: String(fd.get("incomplete_reason") || "").trim() } : {}),
        });
        requestSync(500);
        go(`#/i/${enc(iid)}`);
      },
    },
    backLink(`#/i/${enc(iid)}`),
    h("h1", null, t("signoff_title", { link: linkLabel(entry.link, entry.content) })),
    h("p", { class: "muted" }, t("signoff_intro")),
    [...signoffs.values()].map((s) =>
      h(
        "p",
        { class: "signed" },
        t("signed_by", { name: s.signer_name, meaning: label("meaning", s.meaning), time: when(s.signed_at) }),
        h("span", { class: "muted small" }, ` · ${s.reauth_method ? t("signed_reauth") : t("signed_no_reauth")}`),
      ),
    ),
    missing.length
      ? h(
          "div",
          { class: "missing", id: "missing" },
          h("h2", null, t("missing_answers", { n: missing.length })),
          h(
            "ul",
            null,
            missing.map(({ section, item, repeat }) =>
              h(
                "li",
                { dataset: { item: item.key, repeat: String(repeat) } },
                h("a", { href: itemHref(iid, lid, item.key, repeat) }, `${tx(section.title)}${section.repeatable ? ` ${repeat + 1}` : ""}: ${tx(item.prompt)}`),
              ),
            ),
          ),
        )
      : h("p", { class: "ok", id: "missing" }, t("none_missing")),
    h(
      "div",
      { class: "signer" },
      h("span", { class: "label" }, t("signer_name")),
      h("strong", { id: "signer-name" }, accountName()),
      h("p", { class: "muted small" }, t("signer_note")),
    ),
    h(
      "label",
      null,
      t("meaning"),
      h("select", { name: "meaning" }, ["authored", "reviewed", "approved"].map((m) => h("option", { value: m }, label("meaning", m)))),
    ),
    missing.length
      ? h("label", null, t("incomplete_reason"), h("textarea", { name: "incomplete_reason", id: "incomplete-reason", rows: 3, required: true, maxlength: 2000 }))
      : null,
    h(
      "label",
      null,
      t("sign_password"),
      h("input", { name: "password", id: "sign-password", type: "password", autocomplete: "current-password", required: true, disabled: Boolean(blocked) }),
    ),
    h("p", { class: "muted small", id: "sign-password-note" }, t("sign_password_note")),
    blocked ? h("p", { class: "error", role: "alert", id: "sign-blocked" }, blocked, " ", h("a", { href: "#/login", id: "sign-in-again" }, t("sign_in_again"))) : null,
    error,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "sign", disabled: Boolean(blocked) }, missing.length ? t("sign_anyway") : t("sign_button"))),
  );
}

void start();
