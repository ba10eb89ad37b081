// @ts-check
/**
 * The tablet: local state in IndexedDB and the sync loop, the same behaviour as the
 * Python reference tablet (`sync/client.py`, `Tablet`):
 *
 * - an edit is applied locally at once: the local view of a record is the pulled copy
 *   with every pending outbox edit laid over it, so pulled data never hides a pending
 *   edit (pending edits are rebased onto what arrives); each keeps the `base_rev` it
 *   was made on;
 * - the outbox survives restarts; mids are `<device id>:<counter>`, the counter kept
 *   in the same transaction as the mutation and only ever increased;
 * - `sync()` pulls every page, pushes the outbox in batches, pulls again, then uploads
 *   the evidence files (records always go before their files); each pulled page is
 *   applied together with its cursor in one transaction;
 * - network failures, 5xx and 429 are retried a bounded number of times with jittered
 *   exponential backoff, never sooner than the server's `Retry-After`.
 * @module
 */
import * as hlc from "./hlc.js";
import { DeviceRevoked, HttpTransport, TransportError } from "./http.js";
import { openDatabase, req, run } from "./idb.js";
import { UploadRefused, UploadUnauthorized, sha256Hex, toBytes, tusUpload } from "./evidence.js";
import { ITERATIONS, REAUTH_METHOD, attempt, locked, makeVerifier } from "./reauth.js";

export const PROTOCOL_VERSION = 1;
const KNOWN = new Set(["applied", "merged", "conflict", "rejected"]);

/**
 * @typedef {{n?: number, mid: string, kind: string, id: string, op: string,
 *   base_rev: number, fields: Record<string, any>, hlc: string, device_time: string,
 *   reason: string | null}} Pending
 * @typedef {{mid: string, status: string, kind: string, id: string, detail: any,
 *   sent: Record<string, any>, op: string, at: string}} Result
 * @typedef {{sha256: string, inspection_id: string, size: number, filename: string,
 *   type: string, captured_at: string, upload_url: string | null, state: string,
 *   detail: string}} Evidence
 */

/**
 * Transport: what the tablet needs from the network. {@link HttpTransport} is the real
 * one; tests pass a fake.
 * @typedef {object} Transport
 * @property {(request: any) => Promise<any>} pull
 * @property {(request: any) => Promise<any>} push
 * @property {(o: any) => Promise<void>} [upload]
 */

export class Tablet {
  /**
   * Open (or create) the local database `name`. Use {@link Tablet.open}.
   * @param {IDBDatabase} db
   * @param {object} o
   * @param {Transport & Partial<HttpTransport>} o.transport
   * @param {() => number} [o.now] wall clock, ms
   * @param {(seconds: number) => Promise<void>} [o.sleep]
   * @param {() => number} [o.jitter] in [0, 1)
   * @param {number} [o.retries]
   * @param {number} [o.backoff] seconds, the first wait
   * @param {number} [o.batchSize]
   * @param {number} [o.pageSize]
   * @param {string} [o.appVersion]
   * @param {number} [o.chunkSize] bytes per tus PATCH
   * @param {number} [o.reauthIterations] PBKDF2 iterations of the signing verifier
   */
  constructor(db, o) {
    this.db = db;
    this.transport = o.transport;
    this.now = o.now || Date.now;
    this.sleep = o.sleep || ((s) => new Promise((r) => setTimeout(r, s * 1000)));
    this.jitter = o.jitter || Math.random;
    this.retries = o.retries ?? 5;
    this.backoff = o.backoff ?? 0.2;
    this.batchSize = o.batchSize ?? 100;
    this.pageSize = o.pageSize ?? 1000;
    this.appVersion = o.appVersion ?? "";
    this.chunkSize = o.chunkSize ?? 1 << 20;
    this.reauthIterations = o.reauthIterations ?? ITERATIONS;
    /** @type {Record<string, any>} */
    this.meta = {};
    /** @type {Map<string, Set<(detail: any) => void>>} */
    this.listeners = new Map();
    /** @type {Promise<any> | null} */
    this._syncing = null;
    /** @type {Promise<any> | null} */
    this._again = null;
    /** @type {Record<string, {sent: number, total: number}>} */
    this.uploads = {};
  }

  /**
   * @param {object} o
   * @param {string} [o.name] the local database's name (one per server and tablet)
   * @param {IDBFactory} [o.indexedDB]
   * @param {Transport} [o.transport] default: HTTP to `baseUrl`
   * @param {string} [o.baseUrl]
   * @param {boolean} [o.msgpack]
   * @param {typeof fetch} [o.fetch]
   * @param {() => number} [o.now]
   * @param {(seconds: number) => Promise<void>} [o.sleep]
   * @param {() => number} [o.jitter]
   * @param {number} [o.retries]
   * @param {number} [o.backoff]
   * @param {number} [o.batchSize]
   * @param {number} [o.pageSize]
   * @param {string} [o.appVersion]
   * @param {number} [o.chunkSize]
   * @param {number} [o.reauthIterations] PBKDF2 iterations of the signing verifier
   * @returns {Promise<Tablet>}
   */
  static async open(o = {}) {
    const factory = o.indexedDB || globalThis.indexedDB;
    const db = await openDatabase(factory, o.name || "inspectsync");
    /** @type {Tablet} */
    let tablet;
    const transport =
      o.transport ||
      new HttpTransport({
        baseUrl: o.baseUrl,
        msgpack: o.msgpack,
        fetch: o.fetch,
        onTokens: (t) => tablet._saveTokens(t),
      });
    tablet = new Tablet(db, { ...o, transport: /** @type {any} */ (transport) });
    await tablet._loadMeta();
    const t = /** @type {any} */ (transport);
    if ("accessToken" in t) {
      t.accessToken = tablet.meta.access_token || null;
      t.refreshToken = tablet.meta.refresh_token || null;
    }
    return tablet;
  }

  close() {
    this.db.close();
  }

  // --- events -----------------------------------------------------------------------

  /**
   * Listen: `change` (local data changed), `sync` (a sync started or ended: `{state,
   * error?}`), `upload` (progress of a photo: `{sha256, inspection_id, sent, total}`),
   * `revoked`, `login-required`, `quota`.
   * @param {string} event @param {(detail: any) => void} fn @returns {() => void} unsubscribe
   */
  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event)?.add(fn);
    return () => this.listeners.get(event)?.delete(fn);
  }

  /** @param {string} event @param {any} [detail] */
  emit(event, detail) {
    for (const fn of this.listeners.get(event) || []) {
      try {
        fn(detail);
      } catch (err) {
        console.error(err);
      }
    }
  }

  // --- small local state ------------------------------------------------------------

  async _loadMeta() {
    const rows = await run(this.db, ["meta"], "readonly", (t) => req(t.objectStore("meta").getAll()));
    this.meta = Object.fromEntries(rows.map((r) => [r.key, r.value]));
  }

  /** @param {Record<string, any>} values */
  async setMeta(values) {
    await run(this.db, ["meta"], "readwrite", async (t) => {
      for (const [key, value] of Object.entries(values)) t.objectStore("meta").put({ key, value });
    });
    Object.assign(this.meta, values);
  }

  /** @param {import("./http.js").Tokens} tokens */
  async _saveTokens(tokens) {
    /** @type {Record<string, any>} */
    const values = { access_token: tokens.access_token, refresh_token: tokens.refresh_token };
    if (tokens.user_id) values.user_id = tokens.user_id;
    if (tokens.role) values.role = tokens.role;
    if (tokens.device_id) values.device_id = tokens.device_id;
    // the account's own name, which its signatures print (servers before it send none)
    if (tokens.display_name) values.display_name = tokens.display_name;
    await this.setMeta(values);
  }

  /** @returns {string} */
  get deviceId() {
    return this.meta.device_id || "";
  }

  get loggedIn() {
    return Boolean(this.meta.refresh_token && this.meta.device_id);
  }

  /** @returns {string | null} */
  get cursor() {
    return this.meta.cursor || null;
  }

  /** @returns {hlc.HLC} */
  _clock() {
    return this.meta.hlc ? hlc.parse(this.meta.hlc) : { wall: 0, counter: 0, node: this.deviceId };
  }

  // --- login ------------------------------------------------------------------------

  /**
   * Log in with a device: the first login on this tablet registers it (`deviceName`),
   * later ones reuse its id. A different user on a tablet that still holds another
   * user's data: the local data is wiped first, unless changes are pending (then it
   * refuses: sync them as that user first).
   * @param {string} username @param {string} password
   * @param {{deviceName?: string, platform?: string}} [o]
   */
  async login(username, password, o = {}) {
    const t = /** @type {HttpTransport} */ (/** @type {unknown} */ (this.transport));
    if (this.meta.username && this.meta.username !== username) {
      if ((await this.pending()).length) {
        throw new Error(`${this.meta.username} has changes on this tablet that are not synced yet`);
      }
      await this.wipe();
    }
    const device = this.deviceId
      ? { id: this.deviceId }
      : { name: o.deviceName || "tablet", platform: o.platform || "web", app_version: this.appVersion };
    const tokens = await t.login(username, password, device);
    // the server has just checked the password: keep a verifier of it (never the
    // password) to re-authenticate the signer offline at sign-off; failures reset
    const verifier = await makeVerifier(username, password, { iterations: this.reauthIterations });
    await this.setMeta({ username, signing_verifier: verifier });
    return tokens;
  }

  /**
   * Re-authenticate the signer at the moment of signing, offline: `password` against
   * the verifier kept at the last online login (`app/lib/reauth.js`). A wrong one is
   * counted; {@link MAX_ATTEMPTS} in a row lock signing until the next login. `ok`
   * carries what the sign-off records (`reauth_method`, `reauthenticated_at`).
   * @param {string} password
   * @returns {Promise<{ok: boolean, reason?: "missing" | "locked" | "wrong", left: number,
   *   fields?: {reauth_method: string, reauthenticated_at: string}}>}
   */
  async reauthenticate(password) {
    const before = this.meta.signing_verifier || null;
    const r = await attempt(before, password);
    if (r.verifier && r.verifier.failures !== before?.failures) await this.setMeta({ signing_verifier: r.verifier });
    if (!r.ok) return { ok: false, reason: r.reason, left: r.left };
    const at = new Date(this.now()).toISOString();
    return { ok: true, left: r.left, fields: { reauth_method: REAUTH_METHOD, reauthenticated_at: at } };
  }

  /** Whether signing is possible without a login first: a verifier, not locked. */
  get canSign() {
    const v = this.meta.signing_verifier;
    return Boolean(v) && !locked(v);
  }

  /** Log out: revoke the login on the server if it can be reached; keep the data. */
  async logout() {
    const t = /** @type {any} */ (this.transport);
    if (this.meta.refresh_token && t.fetch) {
      try {
        await t.fetch(t.url("/api/v1/auth/logout"), {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ refresh_token: this.meta.refresh_token }),
        });
      } catch {
        /* offline: the tokens expire by themselves */
      }
    }
    await this.setMeta({ access_token: "", refresh_token: "", signing_verifier: null });
    if ("accessToken" in t) t.accessToken = t.refreshToken = null;
  }

  /** Forget everything (a revoked device). */
  async wipe() {
    const stores = ["records", "outbox", "results", "meta", "evidence", "files"];
    await run(this.db, stores, "readwrite", async (t) => {
      for (const s of stores) t.objectStore(s).clear();
    });
    this.meta = {};
    const t = /** @type {any} */ (this.transport);
    if ("accessToken" in t) t.accessToken = t.refreshToken = null;
    this.emit("change");
  }

  // --- local reads ------------------------------------------------------------------

  /**
   * The pulled copy `{rev, data}`; null if never pulled or pulled as deleted.
   * @param {string} kind @param {string} id
   */
  async serverCopy(kind, id) {
    const row = await run(this.db, ["records"], "readonly", (t) => req(t.objectStore("records").get([kind, id])));
    return row && row.data !== null ? { rev: row.rev, data: row.data } : null;
  }

  /** @returns {Promise<Pending[]>} the outbox, oldest first */
  async pending() {
    return run(this.db, ["outbox"], "readonly", (t) => req(t.objectStore("outbox").getAll()));
  }

  /**
   * The record as the inspector sees it: the pulled copy with the pending edits over it.
   * @param {string} kind @param {string} id @returns {Promise<Record<string, any> | null>}
   */
  async view(kind, id) {
    const [row, edits] = await run(this.db, ["records", "outbox"], "readonly", async (t) => [
      await req(t.objectStore("records").get([kind, id])),
      await req(t.objectStore("outbox").index("rec").getAll([kind, id])),
    ]);
    return overlay(row ? row.data : null, edits);
  }

  /**
   * Every record of a kind as the inspector sees it, by id (optionally only those
   * `where` accepts).
   * @param {string} kind @param {(data: Record<string, any>, id: string) => boolean} [where]
   * @returns {Promise<Map<string, Record<string, any>>>}
   */
  async records(kind, where) {
    const [rows, edits] = await run(this.db, ["records", "outbox"], "readonly", async (t) => [
      await req(t.objectStore("records").index("kind").getAll(kind)),
      await req(t.objectStore("outbox").getAll()),
    ]);
    /** @type {Map<string, Pending[]>} */
    const byId = new Map();
    for (const e of edits) {
      if (e.kind !== kind) continue;
      if (!byId.has(e.id)) byId.set(e.id, []);
      byId.get(e.id)?.push(e);
    }
    /** @type {Map<string, any>} */
    const pulled = new Map(rows.map((r) => [r.id, r.data]));
    const ids = [...new Set([...pulled.keys(), ...byId.keys()])].sort();
    /** @type {Map<string, Record<string, any>>} */
    const out = new Map();
    for (const id of ids) {
      const v = overlay(pulled.get(id) ?? null, byId.get(id) || []);
      if (v !== null && (!where || where(v, id))) out.set(id, v);
    }
    return out;
  }

  /**
   * Push results the inspector must see: conflicts, rejections, results of a kind this
   * app does not know (kept pending).
   * @param {string} [status] @returns {Promise<Result[]>}
   */
  async results(status) {
    const rows = await run(this.db, ["results"], "readonly", (t) => req(t.objectStore("results").getAll()));
    rows.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    return rows.filter((r) => !status || r.status === status);
  }

  /** The inspector has read a result: forget it. @param {string} mid */
  async dismiss(mid) {
    await run(this.db, ["results"], "readwrite", async (t) => {
      t.objectStore("results").delete(mid);
    });
    this.emit("change");
  }

  // --- local writes -----------------------------------------------------------------

  /**
   * Record a local change; it shows in {@link view} at once and waits in the outbox
   * until a push is acknowledged. `fields`: only the fields that changed. Returns the
   * mutation id.
   * @param {string} kind @param {string} id @param {Record<string, any>} [fields]
   * @param {{op?: string, reason?: string | null}} [o]
   * @returns {Promise<string>}
   */
  async edit(kind, id, fields = {}, { op = "upsert", reason = null } = {}) {
    if (!this.deviceId) throw new Error("log in first: the tablet has no device id");
    const nowMs = this.now();
    const mid = await run(this.db, ["meta", "outbox", "records"], "readwrite", async (t) => {
      const meta = t.objectStore("meta");
      const counterRow = await req(meta.get("counter"));
      const counter = Number(counterRow ? counterRow.value : 0) + 1;
      const hlcRow = await req(meta.get("hlc"));
      const last = hlcRow ? hlc.parse(hlcRow.value) : { wall: 0, counter: 0, node: this.deviceId };
      const clock = hlc.format(hlc.tick(last, nowMs, this.deviceId));
      const known = await req(t.objectStore("records").get([kind, id])); // a tombstone's rev counts
      const m = `${this.deviceId}:${counter}`;
      meta.put({ key: "counter", value: counter });
      meta.put({ key: "hlc", value: clock });
      t.objectStore("outbox").add({
        mid: m,
        kind,
        id,
        op,
        base_rev: known ? known.rev : 0,
        fields: op === "delete" ? {} : fields,
        hlc: clock,
        device_time: new Date(nowMs).toISOString(),
        reason: reason || null,
      });
      this.meta.counter = counter;
      this.meta.hlc = clock;
      return m;
    });
    this.emit("change");
    return mid;
  }

  /** A new record id: `f_` + 16 random hex digits, as `Tablet.new_id()`. @param {string} [prefix] */
  newId(prefix = "f") {
    const bytes = globalThis.crypto.getRandomValues(new Uint8Array(8));
    return `${prefix}_${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  // --- evidence ---------------------------------------------------------------------

  /**
   * Keep a photo or file as evidence of an inspection, in IndexedDB until uploaded;
   * returns its SHA-256 (computed here), which the inspection's records name (a
   * finding's `evidence_hashes`). The record syncs first, the file after it.
   * @param {Blob | ArrayBuffer | Uint8Array} data @param {string} inspectionId
   * @param {{filename?: string, type?: string, capturedAt?: string}} [o]
   * @returns {Promise<string>}
   */
  async attach(data, inspectionId, o = {}) {
    const bytes = await toBytes(data);
    const sha = await sha256Hex(bytes);
    const type = o.type || (/** @type {any} */ (data).type ?? "") || "application/octet-stream";
    const filename = o.filename || (/** @type {any} */ (data).name ?? "") || `${sha.slice(0, 12)}`;
    await run(this.db, ["files", "evidence"], "readwrite", async (t) => {
      const files = t.objectStore("files");
      if (!(await req(files.getKey(sha)))) files.put({ sha256: sha, bytes, type });
      const ev = t.objectStore("evidence");
      if (!(await req(ev.getKey([sha, inspectionId])))) {
        ev.put({
          sha256: sha,
          inspection_id: inspectionId,
          size: bytes.byteLength,
          filename,
          type,
          captured_at: o.capturedAt || new Date(this.now()).toISOString(),
          upload_url: null,
          state: "pending",
          detail: "",
        });
      }
    });
    this.emit("change");
    return sha;
  }

  /** @param {string} [state] pending, uploaded, refused @returns {Promise<Evidence[]>} */
  async evidence(state) {
    const rows = await run(this.db, ["evidence"], "readonly", (t) => req(t.objectStore("evidence").getAll()));
    return rows.filter((r) => !state || r.state === state);
  }

  /** The bytes of a file kept on the tablet. @param {string} sha @returns {Promise<{bytes: Uint8Array, type: string} | null>} */
  async file(sha) {
    const row = await run(this.db, ["files"], "readonly", (t) => req(t.objectStore("files").get(sha)));
    return row || null;
  }

  /**
   * Free the space of the photos the server holds: the bytes of every file whose
   * evidence rows are all uploaded leave IndexedDB (the rows stay, as the record of what
   * was uploaded). Use it when storage runs low: such a file can no longer be sent again
   * from this tablet if the server later says it lost it. Returns the bytes freed.
   * @returns {Promise<number>}
   */
  async releaseUploaded() {
    const freed = await run(this.db, ["files", "evidence"], "readwrite", async (t) => {
      const rows = /** @type {Evidence[]} */ (await req(t.objectStore("evidence").getAll()));
      /** @type {Map<string, {done: boolean, size: number}>} */
      const bySha = new Map();
      for (const r of rows) {
        const cur = bySha.get(r.sha256) || { done: true, size: r.size };
        cur.done = cur.done && r.state === "uploaded";
        bySha.set(r.sha256, cur);
      }
      const files = t.objectStore("files");
      let n = 0;
      for (const [sha, { done, size }] of bySha) {
        if (done && (await req(files.getKey(sha)))) {
          files.delete(sha);
          n += size;
        }
      }
      return n;
    });
    if (freed) this.emit("change");
    return freed;
  }

  /** What the server said it still needs at the end of the last pull that asked. @returns {Record<string, string[]>} */
  missingOnServer() {
    return this.meta.missing_evidence || {};
  }

  /**
   * Upload pending evidence, resuming broken uploads (the upload's URL is kept as soon
   * as it is made). Returns how many files completed.
   */
  async uploadEvidence() {
    const t = /** @type {any} */ (this.transport);
    let done = 0;
    for (const row of await this.evidence("pending")) {
      const key = [row.sha256, row.inspection_id];
      const file = await this.file(row.sha256);
      if (!file) continue;
      const metadata = {
        sha256: row.sha256,
        inspection_id: row.inspection_id,
        filename: row.filename,
        captured_at: row.captured_at,
      };
      /** @param {Partial<Evidence>} change */
      const update = (change) =>
        run(this.db, ["evidence"], "readwrite", async (tx) => {
          const store = tx.objectStore("evidence");
          const cur = await req(store.get(key));
          if (cur) store.put({ ...cur, ...change });
        });
      const attempt = async () => {
        const cur = await run(this.db, ["evidence"], "readonly", (tx) => req(tx.objectStore("evidence").get(key)));
        /** @param {number} sent @param {number} total */
        const onProgress = (sent, total) => {
          this.uploads[`${row.sha256}:${row.inspection_id}`] = { sent, total };
          this.emit("upload", { sha256: row.sha256, inspection_id: row.inspection_id, sent, total });
        };
        const o = {
          bytes: file.bytes,
          type: file.type,
          metadata,
          url: cur ? cur.upload_url : null,
          /** @param {string | null} url */
          onUrl: (url) => update({ upload_url: url }),
          onProgress,
          chunkSize: this.chunkSize,
        };
        for (let i = 0; ; i++) {
          try {
            if (t.upload) return await t.upload(o);
            return await tusUpload({ ...o, endpoint: t.url("/api/v1/evidence/uploads"), token: () => t.accessToken });
          } catch (err) {
            if (err instanceof UploadUnauthorized && i === 0 && t.refresh) {
              await t.refresh();
              o.url = (await run(this.db, ["evidence"], "readonly", (tx) => req(tx.objectStore("evidence").get(key))))?.upload_url ?? null;
              continue;
            }
            if (err instanceof UploadUnauthorized) throw new TransportError("upload: not authorised");
            throw err;
          }
        }
      };
      if (!t.upload && !t.url) return 0; // a transport without uploads
      try {
        await this._retry(attempt);
      } catch (err) {
        if (err instanceof UploadRefused) {
          await update({ state: "refused", detail: err.message });
          continue;
        }
        throw err;
      }
      await update({ state: "uploaded", upload_url: null });
      const missing = { ...this.missingOnServer() };
      const left = (missing[row.inspection_id] || []).filter((h) => h !== row.sha256);
      if (left.length) missing[row.inspection_id] = left;
      else delete missing[row.inspection_id];
      await this.setMeta({ missing_evidence: missing });
      done += 1;
      this.emit("change");
    }
    return done;
  }

  // --- sync -------------------------------------------------------------------------

  /**
   * `call` until it does not throw {@link TransportError}, at most `retries + 1` times;
   * between two, the backoff or the server's `Retry-After` (the longer), times
   * `1 + jitter()`. In a browser that says it is offline (`navigator.onLine`), the
   * first failure is final: the caller syncs again when the browser is back online.
   * @template T @param {() => Promise<T>} call @returns {Promise<T>}
   */
  async _retry(call) {
    let delay = this.backoff;
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        // a browser that knows it is offline: no point waiting; it says when it is back
        const offline = globalThis.navigator?.onLine === false;
        if (!(err instanceof TransportError) || attempt >= this.retries || offline) throw err;
        const wait = Math.max(delay, err.retryAfter || 0);
        await this.sleep(wait * (1 + this.jitter()));
        delay = Math.min(delay * 2, 30);
      }
    }
  }

  /** @param {string} remote */
  _mergeClockInto(remote) {
    try {
      return hlc.format(hlc.receive(this._clock(), hlc.parse(remote), this.now(), this.deviceId));
    } catch {
      return this.meta.hlc || null;
    }
  }

  /**
   * Pull every page; returns how many changes were applied. With `checkEvidence`, a
   * tablet that holds evidence files asks which of them the server still needs
   * (answered on the last page) and queues those.
   * @param {{checkEvidence?: boolean}} [o]
   */
  async pull({ checkEvidence = true } = {}) {
    let total = 0;
    const ask = checkEvidence && (await this.evidence()).length > 0;
    for (let pages = 0; ; pages++) {
      const request = {
        protocol: PROTOCOL_VERSION,
        cursor: this.cursor,
        limit: this.pageSize,
        want_missing_evidence: ask,
      };
      const page = await this._retry(() => this.transport.pull(request));
      if (page.resync_required) {
        // drop the local records, keep the outbox (pending edits are still pushed)
        await run(this.db, ["records", "meta"], "readwrite", async (t) => {
          t.objectStore("records").clear();
          t.objectStore("meta").put({ key: "cursor", value: "" });
        });
        this.meta.cursor = "";
        this.emit("change");
        if (pages > 1000) throw new Error("pull: the server keeps asking for a resync");
        continue;
      }
      await this._applyPage(page);
      total += page.changes.length;
      this.emit("change");
      if (!page.has_more) return total;
    }
  }

  /** Evict, then changes, then the cursor, the clock and the missing list: one transaction. @param {any} page */
  async _applyPage(page) {
    const clock = this._mergeClockInto(page.hlc);
    const missing = page.missing_evidence;
    await run(this.db, ["records", "meta", "evidence", "files"], "readwrite", async (t) => {
      const records = t.objectStore("records");
      for (const ref of page.evict || []) records.delete([ref.kind, ref.id]);
      for (const ch of page.changes) {
        // a tombstone keeps its rev: an edit made after seeing the delete carries it
        records.put({ kind: ch.kind, id: ch.id, rev: ch.rev, data: ch.deleted ? null : ch.data });
      }
      const meta = t.objectStore("meta");
      meta.put({ key: "cursor", value: page.cursor });
      if (clock) meta.put({ key: "hlc", value: clock });
      if (missing !== null && missing !== undefined) {
        meta.put({ key: "missing_evidence", value: missing });
        await this._noteMissing(t, missing);
      }
    });
    this.meta.cursor = page.cursor;
    if (clock) this.meta.hlc = clock;
    if (missing !== null && missing !== undefined) this.meta.missing_evidence = missing;
  }

  /**
   * Queue for upload every file the server says an inspection still needs that this
   * tablet holds: a row uploaded before goes back to pending (the server lost it), a
   * file held for another inspection gets a row for this one. Refused files stay
   * refused; hashes this tablet does not hold are left to the tablets that do.
   * @param {IDBTransaction} t @param {Record<string, string[]>} missing
   */
  async _noteMissing(t, missing) {
    const ev = t.objectStore("evidence");
    const files = t.objectStore("files");
    const all = /** @type {Evidence[]} */ (await req(ev.getAll()));
    for (const [iid, hashes] of Object.entries(missing)) {
      for (const sha of hashes) {
        if (!(await req(files.getKey(sha)))) continue;
        const rows = all.filter((r) => r.sha256 === sha);
        const mine = rows.find((r) => r.inspection_id === iid);
        if (mine) {
          if (mine.state === "uploaded") ev.put({ ...mine, state: "pending" });
        } else if (rows.length) {
          ev.put({ ...rows[0], inspection_id: iid, upload_url: null, state: "pending", detail: "" });
        }
      }
    }
  }

  /** Push the outbox in batches; acknowledged mutations leave it. Returns the results. */
  async push() {
    /** @type {any[]} */
    const answered = [];
    const sentMids = new Set();
    for (;;) {
      const batch = (await this.pending()).filter((p) => !sentMids.has(p.mid)).slice(0, this.batchSize);
      if (!batch.length) return answered;
      for (const p of batch) sentMids.add(p.mid); // a kept (unknown) result is not resent in this push
      const request = {
        protocol: PROTOCOL_VERSION,
        app_version: this.appVersion,
        mutations: batch.map((p) => ({
          mid: p.mid,
          kind: p.kind,
          id: p.id,
          op: p.op,
          base_rev: p.base_rev,
          fields: p.fields,
          hlc: p.hlc,
          device_time: p.device_time,
          ...(p.reason ? { reason: p.reason } : {}),
        })),
      };
      const response = await this._retry(() => this.transport.push(request));
      await this._applyResults(batch, response);
      answered.push(...response.results);
      this.emit("change");
    }
  }

  /**
   * Act on each result (docs/sync-protocol.md 5.3): applied and merged leave the outbox;
   * conflict and rejected leave it too and are kept for the inspector to see (a
   * rejection's local edit falls back to the server's copy); duplicate is its original;
   * a status this app does not know keeps the mutation pending, and is shown.
   * @param {Pending[]} batch @param {any} response
   */
  async _applyResults(batch, response) {
    const byMid = new Map(response.results.map((/** @type {any} */ r) => [r.mid, r]));
    const at = new Date(this.now()).toISOString();
    const clock = this._mergeClockInto(response.hlc);
    await run(this.db, ["outbox", "results", "meta"], "readwrite", async (t) => {
      for (const p of batch) {
        const result = byMid.get(p.mid);
        if (!result) continue;
        const original = result.status === "duplicate" ? result.original : result;
        const status = original && original.status;
        const keep = {
          mid: p.mid,
          kind: p.kind,
          id: p.id,
          op: p.op,
          sent: p.fields,
          detail: original,
          at,
        };
        if (!KNOWN.has(status)) {
          t.objectStore("results").put({ ...keep, status: "unknown" });
          continue; // kept pending
        }
        t.objectStore("outbox").delete(/** @type {number} */ (p.n));
        if (status === "conflict" || status === "rejected") {
          t.objectStore("results").put({ ...keep, status });
        } else {
          t.objectStore("results").delete(p.mid);
        }
      }
      if (clock) t.objectStore("meta").put({ key: "hlc", value: clock });
    });
    if (clock) this.meta.hlc = clock;
  }

  /**
   * Pull, push, pull, then upload evidence. Only one sync runs at a time: a call while
   * one runs waits for it and then runs once more. On {@link DeviceRevoked} the local
   * data is wiped (and `revoked` emitted) before the error is thrown.
   * @returns {Promise<{pulled: number, pushed: number, pending: number, uploaded: number}>}
   */
  async sync() {
    if (this._syncing) {
      if (!this._again) this._again = this._syncing.catch(() => {}).then(() => ((this._again = null), this.sync()));
      return this._again;
    }
    this._syncing = this._sync().finally(() => {
      this._syncing = null;
    });
    return this._syncing;
  }

  async _sync() {
    this.emit("sync", { state: "running" });
    try {
      let pulled = await this.pull({ checkEvidence: (await this.pending()).length === 0 });
      const pushed = await this.push();
      if (pushed.length) pulled += await this.pull();
      const uploaded = await this.uploadEvidence();
      const lastSync = new Date(this.now()).toISOString();
      await this.setMeta({ last_sync: lastSync });
      const summary = { pulled, pushed: pushed.length, pending: (await this.pending()).length, uploaded };
      this.emit("sync", { state: "done", summary });
      return summary;
    } catch (err) {
      if (err instanceof DeviceRevoked) {
        await this.wipe();
        this.emit("revoked", err);
      } else if (/** @type {any} */ (err).name === "LoginRequired") {
        await this.setMeta({ access_token: "", refresh_token: "" });
        this.emit("login-required", err);
      }
      this.emit("sync", { state: "failed", error: err });
      throw err;
    }
  }

  /**
   * Listen to the event stream and sync when told (`pull`), reconnecting with backoff;
   * returns a function that stops it. Keep a periodic sync as well: a slow reader may
   * miss an event, and not everything sends one.
   * @param {{onError?: (err: any) => void, maxDelay?: number}} [o]
   * @returns {() => void}
   */
  watch(o = {}) {
    const t = /** @type {any} */ (this.transport);
    const controller = new AbortController();
    const loop = async () => {
      let delay = this.backoff;
      while (!controller.signal.aborted) {
        try {
          for await (const ev of t.events(controller.signal)) {
            delay = this.backoff;
            if (ev.event === "pull") this.sync().catch((err) => o.onError && o.onError(err));
          }
        } catch (err) {
          if (controller.signal.aborted) return;
          if (err instanceof DeviceRevoked) {
            await this.wipe();
            this.emit("revoked", err);
            return;
          }
          if (o.onError) o.onError(err);
        }
        if (controller.signal.aborted) return;
        await this.sleep(delay * (1 + this.jitter()));
        delay = Math.min(delay * 2, o.maxDelay ?? 60);
      }
    };
    void loop();
    return () => controller.abort();
  }

  /** For a sync bar. */
  async status() {
    const results = await this.results();
    const conflicts = await this.records("conflict", (c) => c.status === "open");
    return {
      deviceId: this.deviceId,
      pending: (await this.pending()).length,
      lastSync: this.meta.last_sync || null,
      conflicts: results.filter((r) => r.status === "conflict").length,
      rejected: results.filter((r) => r.status === "rejected").length,
      evidencePending: (await this.evidence("pending")).length,
      evidenceRefused: (await this.evidence("refused")).length,
      evidenceMissingOnServer: Object.values(this.missingOnServer()).reduce((n, v) => n + v.length, 0),
      openConflictRecords: conflicts.size,
    };
  }
}

/**
 * The pulled data with pending edits laid over it, in order (a delete hides the
 * record; a later upsert brings it back with the fields it sends).
 * @param {Record<string, any> | null} data @param {Pending[]} edits
 * @returns {Record<string, any> | null}
 */
export function overlay(data, edits) {
  let out = data ? { ...data } : null;
  for (const e of [...edits].sort((a, b) => (a.n ?? 0) - (b.n ?? 0))) {
    if (e.op === "delete") {
      out = null;
      continue;
    }
    out = { ...(out || {}), ...e.fields };
  }
  return out;
}
