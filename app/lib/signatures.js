// @ts-check
/**
 * What a sign-off binds: the SHA-256 of the signed fields of the records it covers, the
 * same function as `sync/signatures.py` (`content_hash`, `in_scope`), so the server can
 * tell whether the signature matches what it holds.
 * @module
 */
import { sha256Hex } from "./evidence.js";

/** The fields a signature binds, per kind. */
export const SIGNED_FIELDS = Object.freeze({
  response: ["value", "note", "evidence"],
  finding: ["title", "objective_evidence", "linked_items", "references", "classification", "evidence_hashes"],
});

const SETS = new Set(["evidence", "linked_items", "references", "evidence_hashes"]);

/**
 * JSON with object keys sorted and no spaces: msgspec's `json.encode(..., order="sorted")`.
 * @param {any} value @returns {string}
 */
export function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const keys = Object.keys(value).sort(compare);
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Python's order of strings (by code point). @param {string} a @param {string} b */
function compare(a, b) {
  const x = Array.from(a, (c) => /** @type {number} */ (c.codePointAt(0)));
  const y = Array.from(b, (c) => /** @type {number} */ (c.codePointAt(0)));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/**
 * Whether a record is part of what a sign-off of `scope` covers: `inspection` covers
 * every response and finding; `link:<id>` the responses of that link and the findings
 * linked to one of its items.
 * @param {string} scope @param {string} kind @param {string} id @param {Record<string, any>} data
 */
export function inScope(scope, kind, id, data) {
  if (!(kind in SIGNED_FIELDS)) return false;
  if (scope === "inspection") return true;
  const link = scope.startsWith("link:") ? scope.slice(5) : scope;
  if (kind === "response") return id.split("~")[1] === link;
  return (data.linked_items || []).some((/** @type {any} */ ref) => typeof ref === "string" && ref.split(":")[0] === link);
}

/**
 * SHA-256 (hex) of the signed fields of `[kind, id, data]` records, independent of their
 * order and of the order of set-like lists.
 * @param {Array<[string, string, Record<string, any>]>} records @returns {Promise<string>}
 */
export async function contentHash(records) {
  const body = [];
  for (const [kind, id, data] of records) {
    const fields = /** @type {Record<string, readonly string[]>} */ (SIGNED_FIELDS)[kind];
    if (!fields) continue;
    /** @type {Record<string, any>} */
    const signed = {};
    for (const f of fields) {
      let v = data[f];
      if (v === null || v === undefined) continue;
      if (SETS.has(f) && Array.isArray(v)) {
        v = [...v].sort((a, b) => compare(canonicalJson(a), canonicalJson(b)));
      }
      signed[f] = v;
    }
    body.push([kind, id, signed]);
  }
  body.sort((a, b) => compare(/** @type {string} */ (a[0]), /** @type {string} */ (b[0])) || compare(/** @type {string} */ (a[1]), /** @type {string} */ (b[1])));
  return sha256Hex(new TextEncoder().encode(canonicalJson(body)));
}
