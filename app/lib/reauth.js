// @ts-check
/**
 * Re-authentication at the moment of signing, offline (docs/api.md, "The tablet's
 * sign-off is made offline"). A sign-off is made where the server cannot be asked, so
 * at each online login (the server has just checked the password) the tablet keeps a
 * password verifier: PBKDF2-HMAC-SHA256 of the password with a random 16-byte salt,
 * never the password. At signing the password typed again is derived with the same
 * salt and compared. {@link MAX_ATTEMPTS} wrong ones in a row lock signing until the
 * next online login makes a new verifier. The same scheme as the Python CLI
 * (`server/tablet_cli.py`), so both read the same way in the docs.
 * @module
 */

/** PBKDF2 iterations: OWASP's figure for PBKDF2-HMAC-SHA256 (about 0.3 s on a tablet). */
export const ITERATIONS = 310_000;
/** Wrong passwords in a row that lock signing until the next online login. */
export const MAX_ATTEMPTS = 5;
/** What a sign-off records as its method (sync.signatures.REAUTH_METHODS). */
export const REAUTH_METHOD = "device_password";

/**
 * @typedef {{alg: "PBKDF2-HMAC-SHA256", iterations: number, salt: string, hash: string,
 *   username: string, failures: number}} Verifier
 * `salt` and `hash` in hex; `failures`: wrong passwords in a row since the login.
 */

/** @param {Uint8Array} bytes */
function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** @param {string} text @returns {Uint8Array<ArrayBuffer>} */
function unhex(text) {
  const out = new Uint8Array(new ArrayBuffer(text.length / 2));
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * PBKDF2-HMAC-SHA256 of `password` (UTF-8), 32 bytes, by WebCrypto.
 * @param {string} password @param {Uint8Array<ArrayBuffer>} salt @param {number} iterations
 */
async function derive(password, salt, iterations) {
  const subtle = globalThis.crypto.subtle;
  const key = await subtle.importKey("raw", new TextEncoder().encode(password), "PBKDF2", false, ["deriveBits"]);
  const bits = await subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, 256);
  return new Uint8Array(bits);
}

/**
 * A new verifier of `password`, with a fresh random salt (made at each online login).
 * @param {string} username @param {string} password @param {{iterations?: number}} [o]
 * @returns {Promise<Verifier>}
 */
export async function makeVerifier(username, password, o = {}) {
  const iterations = o.iterations ?? ITERATIONS;
  const salt = globalThis.crypto.getRandomValues(new Uint8Array(new ArrayBuffer(16)));
  const hash = await derive(password, salt, iterations);
  return { alg: "PBKDF2-HMAC-SHA256", iterations, salt: hex(salt), hash: hex(hash), username, failures: 0 };
}

/**
 * Whether `password` is the one `verifier` was made of (compared without an early exit).
 * @param {Verifier} verifier @param {string} password
 */
export async function matches(verifier, password) {
  const got = await derive(password, unhex(verifier.salt), verifier.iterations);
  const want = unhex(verifier.hash);
  let diff = got.length ^ want.length;
  for (let i = 0; i < Math.min(got.length, want.length); i++) diff |= got[i] ^ want[i];
  return diff === 0;
}

/** @param {Verifier | null | undefined} verifier */
export function locked(verifier) {
  return Boolean(verifier && verifier.failures >= MAX_ATTEMPTS);
}

/**
 * One attempt to sign: `ok` with the verifier's failures reset, or not with them
 * counted (`left`: attempts before signing locks). No verifier (a login from before
 * it was kept): `missing`. Locked: `locked`, without deriving anything.
 * @param {Verifier | null | undefined} verifier @param {string} password
 * @returns {Promise<{ok: boolean, reason?: "missing" | "locked" | "wrong", left: number, verifier: Verifier | null}>}
 */
export async function attempt(verifier, password) {
  if (!verifier) return { ok: false, reason: "missing", left: 0, verifier: null };
  if (locked(verifier)) return { ok: false, reason: "locked", left: 0, verifier };
  if (await matches(verifier, password)) return { ok: true, left: MAX_ATTEMPTS, verifier: { ...verifier, failures: 0 } };
  const next = { ...verifier, failures: verifier.failures + 1 };
  return { ok: false, reason: locked(next) ? "locked" : "wrong", left: MAX_ATTEMPTS - next.failures, verifier: next };
}
