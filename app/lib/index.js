// @ts-check
/**
 * inspectsync's JavaScript client: what a tablet app needs to sync with the server
 * (docs/app.md). ES modules; dependencies `tus-js-client` and `@msgpack/msgpack`.
 * @module
 */
export { Tablet, overlay, PROTOCOL_VERSION } from "./tablet.js";
export {
  HttpTransport,
  TransportError,
  DeviceRevoked,
  LoginRequired,
  HttpError,
  parseRetryAfter,
  MSGPACK,
} from "./http.js";
export { UploadRefused, sha256Hex, tusUpload } from "./evidence.js";
export * as hlc from "./hlc.js";

/** The PIC/S and NMPA labels of a finding's classification (sync/fielddata.py). */
export const CLASSIFICATION_LABELS = Object.freeze({
  critical: { pics: "critical", nmpa: "serious", nmpa_zh: "严重缺陷", pics_zh: "关键" },
  major: { pics: "major", nmpa: "major", nmpa_zh: "主要缺陷", pics_zh: "主要" },
  other: { pics: "other", nmpa: "general", nmpa_zh: "一般缺陷", pics_zh: "其他" },
});

/**
 * The id of the response to one item (in one repeat) of one chain link: derived, the
 * same on every tablet (docs/sync-protocol.md section 3).
 * @param {string} inspectionId @param {string} linkId @param {string} itemKey
 * @param {number} [repeat]
 */
export function responseId(inspectionId, linkId, itemKey, repeat = 0) {
  return `${inspectionId}~${linkId}~${itemKey}~${repeat}`;
}
export { contentHash, inScope, canonicalJson, SIGNED_FIELDS } from "./signatures.js";
export { ITERATIONS, MAX_ATTEMPTS, REAUTH_METHOD, makeVerifier, matches, attempt } from "./reauth.js";
