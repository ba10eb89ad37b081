// Re-authentication at signing, offline (app/lib/reauth.js): the verifier kept at login
// is standard PBKDF2-HMAC-SHA256 (the CLI's hashlib gives the same bytes), holds no
// password, tells the right password from a wrong one, and 5 wrong ones in a row lock
// signing, across a restart, until the next online login.
import assert from "node:assert/strict";
import { test } from "node:test";
import { pbkdf2Sync } from "node:crypto";
import { IDBFactory } from "fake-indexeddb";
import { ITERATIONS, MAX_ATTEMPTS, Tablet, makeVerifier, matches } from "../lib/index.js";

const PASSWORD = "correct horse 电池 staple";

test("the verifier is PBKDF2-HMAC-SHA256 with a fresh 16-byte salt and 310,000 iterations, and no password", async () => {
  const v = await makeVerifier("insp.js1", PASSWORD);
  assert.equal(v.iterations, ITERATIONS);
  assert.equal(ITERATIONS, 310_000);
  assert.match(v.salt, /^[0-9a-f]{32}$/);
  assert.match(v.hash, /^[0-9a-f]{64}$/);
  const expected = pbkdf2Sync(PASSWORD, Buffer.from(v.salt, "hex"), ITERATIONS, 32, "sha256").toString("hex");
  assert.equal(v.hash, expected);
  assert.ok(!JSON.stringify(v).includes("horse"), "the password is not kept");
  assert.equal(await matches(v, PASSWORD), true);
  assert.equal(await matches(v, "correct horse 电池 staplE"), false);
  assert.equal(await matches(v, ""), false);
  const again = await makeVerifier("insp.js1", PASSWORD);
  assert.notEqual(again.salt, v.salt);
  assert.notEqual(again.hash, v.hash);
});

/** A transport whose login accepts one password, as the server would. */
class LoginTransport {
  constructor() {
    this.logins = 0;
  }
  async login(username, password) {
    if (password !== PASSWORD) throw new Error("401");
    this.logins += 1;
    return { access_token: "a", refresh_token: "r", device_id: "dev_t", user_id: "u1", display_name: "Inspector Li" };
  }
  async pull() {
    throw new Error("offline");
  }
  async push() {
    throw new Error("offline");
  }
}

async function open(factory, transport) {
  const t = await Tablet.open({ indexedDB: factory, transport, now: () => Date.parse("2026-12-06T05:00:00Z"), reauthIterations: 1000 });
  await t.setMeta({ device_id: "dev_t", refresh_token: "r" });
  return t;
}

test("signing re-authenticates offline: right passes with what the sign-off records, wrong is counted, 5 lock until the next login", async () => {
  const factory = new IDBFactory();
  const transport = new LoginTransport();
  let t = await open(factory, transport);
  assert.deepEqual(await t.reauthenticate(PASSWORD), { ok: false, reason: "missing", left: 0 }, "no login yet: no verifier");
  assert.equal(t.canSign, false);

  await t.login("insp.js1", PASSWORD);
  assert.equal(t.canSign, true);
  assert.ok(!JSON.stringify(t.meta).includes("horse"), "the session keeps no password");
  const ok = await t.reauthenticate(PASSWORD);
  assert.equal(ok.ok, true);
  assert.deepEqual(ok.fields, { reauth_method: "device_password", reauthenticated_at: "2026-12-06T05:00:00.000Z" });

  // wrong ones count down; a right one in between starts the count again
  assert.deepEqual(await t.reauthenticate("guess"), { ok: false, reason: "wrong", left: 4 });
  assert.deepEqual(await t.reauthenticate("guess"), { ok: false, reason: "wrong", left: 3 });
  assert.equal((await t.reauthenticate(PASSWORD)).ok, true);
  for (let left = MAX_ATTEMPTS - 1; left > 0; left--) {
    assert.deepEqual(await t.reauthenticate(`guess ${left}`), { ok: false, reason: "wrong", left });
  }
  assert.deepEqual(await t.reauthenticate("guess 0"), { ok: false, reason: "locked", left: 0 }, "the 5th wrong one locks");
  assert.deepEqual(await t.reauthenticate(PASSWORD), { ok: false, reason: "locked", left: 0 }, "locked: even the right one");
  assert.equal(t.canSign, false);

  // the lock survives closing the app
  t.close();
  t = await open(factory, transport);
  assert.equal(t.canSign, false);
  assert.equal((await t.reauthenticate(PASSWORD)).reason, "locked");

  // a wrong password at login makes no verifier and keeps the lock
  await assert.rejects(t.login("insp.js1", "guess"));
  assert.equal(t.canSign, false);
  // the next online login unlocks, with a new salt
  const salt = t.meta.signing_verifier.salt;
  await t.login("insp.js1", PASSWORD);
  assert.notEqual(t.meta.signing_verifier.salt, salt);
  assert.equal(t.canSign, true);
  assert.equal((await t.reauthenticate(PASSWORD)).ok, true);

  // signing out forgets the verifier
  await t.logout();
  assert.equal((await t.reauthenticate(PASSWORD)).reason, "missing");
  t.close();
});
