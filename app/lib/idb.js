// @ts-check
/**
 * The tablet's local database in IndexedDB: a thin promise layer, nothing more.
 *
 * Stores (all in one database, so one transaction can span them):
 * - `records`  `[kind, id]` -> `{kind, id, rev, data}`: the server's copy as last pulled
 *   (`data` null for a tombstone, whose `rev` is kept as the base of a later edit);
 * - `outbox`   auto-increment `n` -> a pending mutation (index `rec` on `[kind, id]`);
 * - `results`  `mid` -> a result the inspector must see (conflict, rejected, unknown);
 * - `meta`     `key` -> `{key, value}`: device id, tokens, cursor, HLC, counter, ...;
 * - `evidence` `[sha256, inspection_id]` -> upload state of a file for an inspection;
 * - `files`    `sha256` -> `{sha256, bytes, type}`: the photo itself until uploaded.
 * @module
 */

export const DB_VERSION = 1;

/**
 * @param {IDBFactory} factory
 * @param {string} name
 * @returns {Promise<IDBDatabase>}
 */
export function openDatabase(factory, name) {
  return new Promise((resolve, reject) => {
    const req = factory.open(name, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      const records = db.createObjectStore("records", { keyPath: ["kind", "id"] });
      records.createIndex("kind", "kind");
      const outbox = db.createObjectStore("outbox", { keyPath: "n", autoIncrement: true });
      outbox.createIndex("rec", ["kind", "id"]);
      db.createObjectStore("results", { keyPath: "mid" });
      db.createObjectStore("meta", { keyPath: "key" });
      db.createObjectStore("evidence", { keyPath: ["sha256", "inspection_id"] });
      db.createObjectStore("files", { keyPath: "sha256" });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error(`database ${name} is open elsewhere with an older version`));
  });
}

/**
 * @template T
 * @param {IDBRequest<T>} request
 * @returns {Promise<T>}
 */
export function req(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/**
 * Run `fn` in one transaction over `stores`; resolves with what `fn` returned once the
 * transaction has committed (rejects, and nothing is written, if anything failed).
 * Inside `fn` await only IndexedDB requests (`req`): any other wait lets the
 * transaction commit early.
 * @template T
 * @param {IDBDatabase} db
 * @param {string[]} stores
 * @param {IDBTransactionMode} mode
 * @param {(t: IDBTransaction) => Promise<T>} fn
 * @returns {Promise<T>}
 */
export function run(db, stores, mode, fn) {
  return new Promise((resolve, reject) => {
    const t = db.transaction(stores, mode);
    /** @type {T} */
    let value;
    let failed = false;
    t.oncomplete = () => resolve(value);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error ?? new Error("transaction aborted"));
    fn(t).then(
      (v) => {
        value = v;
      },
      (err) => {
        failed = true;
        try {
          t.abort();
        } catch {
          /* already finished */
        }
        reject(err);
      },
    );
    void failed;
  });
}
