// @ts-check
/**
 * The HTTP side of the sync protocol (docs/sync-protocol.md, docs/api.md): login with a
 * device, token refresh, pull and push in JSON or MessagePack, the event stream. Every
 * failure is one of four errors, so the caller knows what to do:
 * {@link TransportError} (network, 5xx, 429: retry later, `retryAfter` seconds at
 * least), {@link DeviceRevoked} (wipe), {@link LoginRequired} (the login is over: ask
 * for the password again), {@link HttpError} (any other refusal, with its problem).
 * @module
 */
import { decode as mpDecode, encode as mpEncode } from "@msgpack/msgpack";

export const MSGPACK = "application/msgpack";
export const MAX_RETRY_AFTER = 300; // seconds: a longer Retry-After is waited this long at most

export class TransportError extends Error {
  /** @param {string} message @param {number | null} [retryAfter] */
  constructor(message, retryAfter = null) {
    super(message);
    this.name = "TransportError";
    /** seconds the server asked to wait (`Retry-After`), if it named a time */
    this.retryAfter = retryAfter;
  }
}

export class DeviceRevoked extends Error {
  constructor(message = "the server has revoked this device") {
    super(message);
    this.name = "DeviceRevoked";
  }
}

export class LoginRequired extends Error {
  /** @param {string} code @param {string} [message] */
  constructor(code, message) {
    super(message || `log in again (${code})`);
    this.name = "LoginRequired";
    this.code = code;
  }
}

export class HttpError extends Error {
  /** @param {number} status @param {Record<string, any>} problem */
  constructor(status, problem) {
    super(`${status} ${problem.code || ""} ${problem.detail || problem.title || ""}`.trim());
    this.name = "HttpError";
    this.status = status;
    this.problem = problem;
    /** @type {string} */
    this.code = problem.code || "";
  }
}

/**
 * The answer's `Retry-After` in seconds (a number or an HTTP date), at most
 * {@link MAX_RETRY_AFTER}; null when it has none or it cannot be read.
 * @param {string | null} text @param {number} [nowMs]
 * @returns {number | null}
 */
export function parseRetryAfter(text, nowMs = Date.now()) {
  if (!text || !text.trim()) return null;
  let seconds = Number(text.trim());
  if (!/^\s*[0-9.]+\s*$/.test(text)) {
    const when = Date.parse(text);
    if (Number.isNaN(when)) return null;
    seconds = (when - nowMs) / 1000;
  }
  if (Number.isNaN(seconds)) return null;
  return Math.min(Math.max(seconds, 0), MAX_RETRY_AFTER);
}

/** @param {Response} r @returns {Promise<Record<string, any>>} */
async function problemOf(r) {
  try {
    const body = await r.json();
    return body && typeof body === "object" ? body : {};
  } catch {
    return {};
  }
}

/**
 * @typedef {{access_token: string, refresh_token: string, device_id?: string | null,
 *   user_id?: string, role?: string, expires_in?: number, display_name?: string}} Tokens
 */

export class HttpTransport {
  /**
   * @param {object} options
   * @param {string} [options.baseUrl] the server, e.g. `http://10.0.0.5:8000`; `""` (the
   *   default) is the page's own origin
   * @param {boolean} [options.msgpack] pull and push in MessagePack
   * @param {typeof fetch} [options.fetch]
   * @param {(tokens: Tokens) => void | Promise<void>} [options.onTokens] called with every new
   *   token pair (keep it in durable storage)
   */
  constructor({ baseUrl = "", msgpack = false, fetch: f, onTokens } = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.media = msgpack ? MSGPACK : "application/json";
    this.fetch = f || globalThis.fetch.bind(globalThis);
    this.onTokens = onTokens;
    /** @type {string | null} */
    this.accessToken = null;
    /** @type {string | null} */
    this.refreshToken = null;
    /** @type {Promise<void> | null} */
    this._refreshing = null;
  }

  /** @param {string} path */
  url(path) {
    return `${this.baseUrl}${path}`;
  }

  /** @param {string} path @param {RequestInit} init @returns {Promise<Response>} */
  async _fetch(path, init) {
    try {
      return await this.fetch(this.url(path), init);
    } catch (err) {
      throw new TransportError(`${path}: ${/** @type {Error} */ (err).message || err}`);
    }
  }

  /** @param {Tokens} tokens */
  async _keep(tokens) {
    this.accessToken = tokens.access_token;
    this.refreshToken = tokens.refresh_token;
    if (this.onTokens) await this.onTokens(tokens);
  }

  /**
   * Log in; `device` is `{name, platform?, app_version?}` to register a new tablet or
   * `{id}` to reuse one. Resolves with the token answer (`device_id` included).
   * @param {string} username @param {string} password
   * @param {{name?: string, id?: string, platform?: string, app_version?: string}} device
   * @returns {Promise<Tokens>}
   */
  async login(username, password, device) {
    const r = await this._fetch("/api/v1/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password, device }),
    });
    if (r.status >= 500 || r.status === 429) {
      throw new TransportError(`login: ${r.status}`, parseRetryAfter(r.headers.get("Retry-After")));
    }
    const body = await problemOf(r);
    if (r.status === 401 && body.code === "device_revoked") throw new DeviceRevoked();
    if (r.status !== 200) throw new HttpError(r.status, body);
    await this._keep(/** @type {Tokens} */ (body));
    return /** @type {Tokens} */ (body);
  }

  /** Spend the refresh token for a new pair (one refresh at a time). */
  async refresh() {
    if (!this._refreshing) {
      this._refreshing = this._doRefresh().finally(() => {
        this._refreshing = null;
      });
    }
    return this._refreshing;
  }

  async _doRefresh() {
    if (!this.refreshToken) throw new LoginRequired("no_refresh_token");
    const r = await this._fetch("/api/v1/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: this.refreshToken }),
    });
    if (r.status >= 500 || r.status === 429) {
      throw new TransportError(`refresh: ${r.status}`, parseRetryAfter(r.headers.get("Retry-After")));
    }
    const body = await problemOf(r);
    if (r.status === 401 && body.code === "device_revoked") throw new DeviceRevoked();
    if (r.status !== 200) throw new LoginRequired(body.code || String(r.status), body.detail);
    await this._keep(/** @type {Tokens} */ (body));
  }

  /**
   * A request with the access token; a 401 other than `device_revoked` refreshes the
   * token once and sends the request again.
   * @param {string} path @param {RequestInit & {headers?: Record<string, string>}} init
   * @returns {Promise<Response>}
   */
  async authed(path, init = {}) {
    for (let attempt = 0; attempt < 2; attempt++) {
      const r = await this._fetch(path, {
        ...init,
        headers: { ...(init.headers || {}), Authorization: `Bearer ${this.accessToken}` },
      });
      if (r.status === 401) {
        const body = await problemOf(r.clone());
        if (body.code === "device_revoked") throw new DeviceRevoked();
        if (body.code === "user_disabled") throw new LoginRequired("user_disabled", body.detail);
        if (attempt === 0) {
          await this.refresh();
          continue;
        }
        throw new LoginRequired(body.code || "401", body.detail);
      }
      if (r.status >= 500 || r.status === 429) {
        throw new TransportError(
          `${path}: server answered ${r.status}`,
          parseRetryAfter(r.headers.get("Retry-After")),
        );
      }
      return r;
    }
    throw new LoginRequired("401");
  }

  /** @param {string} path @param {any} message */
  async _call(path, message) {
    const body = this.media === MSGPACK ? mpEncode(message) : JSON.stringify(message);
    const r = await this.authed(path, {
      method: "POST",
      headers: { "Content-Type": this.media, Accept: this.media },
      body,
    });
    if (r.status !== 200) throw new HttpError(r.status, await problemOf(r));
    if ((r.headers.get("Content-Type") || "").includes(MSGPACK)) {
      return mpDecode(new Uint8Array(await r.arrayBuffer()));
    }
    return r.json();
  }

  /** @param {object} request a PullRequest @returns {Promise<any>} a PullResponse */
  pull(request) {
    return this._call("/api/v1/sync/pull", request);
  }

  /** @param {object} request a PushRequest @returns {Promise<any>} a PushResponse */
  push(request) {
    return this._call("/api/v1/sync/push", request);
  }

  /** GET a JSON route of the API with the token. @param {string} path */
  async getJson(path) {
    const r = await this.authed(path, { headers: { Accept: "application/json" } });
    if (r.status !== 200) throw new HttpError(r.status, await problemOf(r));
    return r.json();
  }

  /**
   * The server-sent event stream (`GET /api/v1/sync/events`): yields `{event, data}`
   * (`ready`, `pull` with a list of inspection ids; keep-alives are skipped) until the
   * server closes it or `signal` aborts. Uses fetch, not EventSource, because the
   * stream needs the bearer token.
   * @param {AbortSignal} [signal]
   * @returns {AsyncGenerator<{event: string, data: any}>}
   */
  async *events(signal) {
    const r = await this.authed("/api/v1/sync/events", {
      headers: { Accept: "text/event-stream" },
      signal,
    });
    if (r.status !== 200 || !r.body) throw new HttpError(r.status, await problemOf(r));
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let event = "message";
    /** @type {string[]} */
    let data = [];
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl).replace(/\r$/, "");
          buffer = buffer.slice(nl + 1);
          if (line === "") {
            if (event !== "message" || data.some((d) => d !== "")) {
              const text = data.join("\n");
              let parsed = text;
              try {
                parsed = JSON.parse(text);
              } catch {
                /* keep the text */
              }
              yield { event, data: parsed };
            }
            event = "message";
            data = [];
          } else if (line.startsWith(":")) {
            // a comment (keep-alive)
          } else if (line.startsWith("event:")) {
            event = line.slice(6).trim();
          } else if (line.startsWith("data:")) {
            data.push(line.slice(5).replace(/^ /, ""));
          }
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }
}
