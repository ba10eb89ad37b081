// @ts-check
/**
 * Evidence files: SHA-256 on the device (WebCrypto) and resumable uploads over tus 1.0.0
 * with tus-js-client (docs/evidence.md).
 * @module
 */
import * as tus from "tus-js-client";
import { DeviceRevoked, TransportError, parseRetryAfter } from "./http.js";

export class UploadRefused extends Error {
  /** @param {string} message @param {number} [status] @param {string} [code] */
  constructor(message, status, code) {
    super(message);
    this.name = "UploadRefused";
    this.status = status;
    this.code = code;
  }
}

/** The access token expired during an upload: refresh, then resume. */
export class UploadUnauthorized extends Error {}

/** @param {Uint8Array} bytes @returns {Promise<string>} the SHA-256 as 64 lowercase hex digits */
export async function sha256Hex(bytes) {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", /** @type {Uint8Array<ArrayBuffer>} */ (bytes));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Anything a file picker, a camera or a test hands in, as bytes.
 * @param {Blob | ArrayBuffer | Uint8Array} data @returns {Promise<Uint8Array>}
 */
export async function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(await data.arrayBuffer());
}

const IS_BROWSER = typeof window !== "undefined" || typeof self !== "undefined" && "importScripts" in self;

/** @param {any} res @returns {string} */
function codeOf(res) {
  try {
    return JSON.parse(res.getBody() || "{}").code || "";
  } catch {
    return "";
  }
}

/**
 * Upload one file with tus, resuming `url` (an upload created earlier, kept by the
 * caller across restarts) from the server's offset. tus-js-client asks `HEAD` for the
 * offset, creates a new upload when the old one is gone (404, 410), and retries 423,
 * 409 and network failures itself a few times. What reaches the caller:
 * resolves when the server holds the whole file; rejects with {@link TransportError}
 * (network, 5xx, 429, still locked: try later, the next call resumes),
 * {@link UploadUnauthorized} (refresh the token, then call again),
 * {@link DeviceRevoked}, or {@link UploadRefused} (type, size, hash, a closed
 * inspection: retrying cannot help).
 * @param {object} o
 * @param {string} o.endpoint the uploads URL (`.../api/v1/evidence/uploads`)
 * @param {() => string | null} o.token the current access token
 * @param {Uint8Array} o.bytes
 * @param {string} [o.type]
 * @param {Record<string, string>} o.metadata
 * @param {string | null} o.url
 * @param {(url: string | null) => void | Promise<void>} o.onUrl
 * @param {(sent: number, total: number) => void} [o.onProgress]
 * @param {number} [o.chunkSize]
 * @param {number[]} [o.retryDelays]
 * @param {(method: string, status: number) => void} [o.onResponse] every answer, as it comes (diagnostics, tests)
 * @returns {Promise<void>}
 */
export function tusUpload(o) {
  return new Promise((resolve, reject) => {
    /** @type {any} */
    const input = IS_BROWSER
      ? new Blob([/** @type {BlobPart} */ (o.bytes)], { type: o.type || "application/octet-stream" })
      : globalThis.Buffer.from(o.bytes);
    const upload = new tus.Upload(input, {
      endpoint: o.endpoint,
      uploadUrl: o.url || null,
      chunkSize: o.chunkSize ?? 1 << 20,
      metadata: o.metadata,
      retryDelays: o.retryDelays ?? [0, 1000, 3000],
      storeFingerprintForResuming: false,
      removeFingerprintOnSuccess: false,
      onBeforeRequest(request) {
        request.setHeader("Authorization", `Bearer ${o.token()}`);
      },
      onUploadUrlAvailable() {
        void o.onUrl(upload.url);
      },
      onProgress(sent, total) {
        if (o.onProgress) o.onProgress(sent, total);
      },
      onAfterResponse(request, response) {
        if (o.onResponse) o.onResponse(request.getMethod(), response.getStatus());
      },
      onShouldRetry(err) {
        if (globalThis.navigator?.onLine === false) return false; // the next sync resumes
        const status = /** @type {any} */ (err).originalResponse?.getStatus?.() ?? 0;
        return status === 0 || status === 409 || status === 423 || status === 460 || status >= 500;
      },
      onSuccess() {
        resolve();
      },
      onError(err) {
        const res = /** @type {any} */ (err).originalResponse;
        const status = res?.getStatus?.() ?? 0;
        const code = res ? codeOf(res) : "";
        if (status === 401) {
          reject(code === "device_revoked" ? new DeviceRevoked() : new UploadUnauthorized("token expired"));
        } else if (status === 0 || status >= 500 || status === 429 || status === 423 || status === 409 || status === 460) {
          const after = res?.getHeader?.("Retry-After") ?? null;
          reject(new TransportError(`upload: ${status || "network"} ${code} ${err.message}`.trim(), parseRetryAfter(after)));
        } else {
          reject(new UploadRefused(`${status} ${code || err.message}`, status, code));
        }
      },
    });
    upload.start();
  });
}
