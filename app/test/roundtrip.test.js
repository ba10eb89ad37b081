// The library against the real server process: login with device registration, pull,
// push, a rejection with its reason, a conflict on both tablets and a supervisor's
// resolution reaching both, MessagePack, a photo over tus with its SHA-256, the event
// stream, token refresh and a revoked device.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createHash } from "node:crypto";
import { IDBFactory } from "fake-indexeddb";
import { DeviceRevoked, Tablet, responseId } from "../lib/index.js";
import { DEMO_PASSWORD, startServer } from "./server.js";

const INSP = "insp-ds-routine"; // team: insp.js1 (lead), insp.js2
let server;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

async function tablet(username, o = {}) {
  const t = await Tablet.open({ indexedDB: new IDBFactory(), baseUrl: server.base, backoff: 0.05, retries: 3, ...o });
  await t.login(username, DEMO_PASSWORD, { deviceName: `${username} node test` });
  return t;
}

async function api(method, path, token, body) {
  const r = await fetch(`${server.base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

async function staffToken(username) {
  const r = await fetch(`${server.base}/api/v1/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password: DEMO_PASSWORD }),
  });
  return (await r.json()).access_token;
}

/** A checklist item of the inspection's pinned versions, by answer type. */
async function items(t) {
  const insp = await t.view("inspection", INSP);
  const out = [];
  for (const [linkId, versionId] of Object.entries(insp.pins)) {
    const v = await t.view("checklist_version", versionId);
    for (const s of v.content.sections) for (const i of s.items) out.push({ linkId, section: s, item: i });
  }
  return out;
}

test("pull, push, rejection, conflict and resolution round trips against the server", { timeout: 120_000 }, async () => {
  const li = await tablet("insp.js1");
  const zhao = await tablet("insp.js2", { msgpack: true });
  assert.match(li.deviceId, /^dev_/);
  assert.notEqual(li.deviceId, zhao.deviceId);
  // the login answer names the account: the name its signatures print
  assert.equal(li.meta.display_name, "Inspector Li (Jiangsu)");
  assert.equal(zhao.meta.display_name, "Inspector Zhao (Jiangsu)");
  await li.sync();
  await zhao.sync();
  const inspections = await li.records("inspection");
  assert.ok(inspections.has(INSP));
  assert.ok(inspections.has("insp-joint-conj"));
  assert.ok(!(await li.records("inspection")).has("insp-fill-pai"), "only the inspector's scope");
  const all = await items(li);
  const yesNo = all.find((x) => x.item.answer === "yes_no_na");
  const num = all.find((x) => x.item.answer === "number" && x.item.max !== undefined && !x.section.repeatable);

  // an answer and an invalid one
  const okId = responseId(INSP, yesNo.linkId, yesNo.item.key, 0);
  const badId = responseId(INSP, num.linkId, num.item.key, 0);
  await li.edit("response", okId, { value: "yes", note: "seen" });
  await li.edit("response", badId, { value: num.item.max + 1000 });
  await li.sync();
  const rejected = await li.results("rejected");
  assert.equal(rejected.length, 1);
  assert.equal(rejected[0].id, badId);
  assert.equal(rejected[0].detail.code, "out_of_limits");
  assert.equal(rejected[0].detail.field, "value");
  assert.ok(rejected[0].detail.message.length > 0);
  assert.equal(await li.view("response", badId), null, "the local view fell back to the server's (none)");
  await zhao.sync();
  assert.equal((await zhao.view("response", okId)).value, "yes", "the other tablet has the answer");

  // one finding, edited on both tablets "offline", the classification differently
  const fid = li.newId();
  await li.edit("finding", fid, { inspection_id: INSP, title: "LN2 alarm not tested", classification: "major" });
  await li.sync();
  await zhao.sync();
  assert.equal((await zhao.view("finding", fid)).title, "LN2 alarm not tested");
  await li.edit("finding", fid, { classification: "critical", title: "LN2 alarm never tested" });
  await zhao.edit("finding", fid, { classification: "other" });
  await li.sync();
  await zhao.sync();
  const zc = await zhao.results("conflict");
  assert.equal(zc.length, 1);
  const kept = zc[0].detail.conflicts.find((c) => c.field === "classification");
  assert.equal(kept.flagged, true);
  assert.deepEqual(kept.values.map((v) => v.value).sort(), ["critical", "other"]);
  await li.sync();
  for (const t of [li, zhao]) {
    const f = await t.view("finding", fid);
    assert.deepEqual(f.open_conflicts, ["classification"]);
    assert.equal(f.title, "LN2 alarm never tested", "different fields merged");
    const open = await t.records("conflict", (c) => c.record_id === fid && c.status === "open");
    assert.equal(open.size, 1, "both tablets hold the conflict record");
  }
  // the supervisor resolves it; both tablets receive the resolution
  const sup = await staffToken("sup.js");
  const r = await api("POST", `/api/v1/sync/conflicts/${kept.conflict_id}/resolve`, sup, { value: "critical", reason: "alarm never tested: critical (PI 040)" });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  for (const t of [li, zhao]) {
    await t.sync();
    const f = await t.view("finding", fid);
    assert.equal(f.classification, "critical");
    assert.deepEqual(f.open_conflicts, []);
    assert.equal((await t.view("conflict", kept.conflict_id)).status, "resolved");
  }
  // both converge on the server's state for the inspection
  const fromServer = await api("GET", `/api/v1/sync/history/finding/${fid}`, sup);
  assert.equal(fromServer.status, 200);
  li.close();
  zhao.close();
});

test("a photo over tus: the finding first, then the file, SHA-256 verified by the server", { timeout: 120_000 }, async () => {
  const li = await tablet("insp.js1", { chunkSize: 1000 });
  await li.sync();
  // a small valid PNG header followed by bytes: the server sniffs the type from the start
  const png = Buffer.concat([Buffer.from("89504e470d0a1a0a", "hex"), Buffer.alloc(5000, 7)]);
  const sha = await li.attach(new Uint8Array(png), INSP, { filename: "ln2.png", type: "image/png" });
  assert.equal(sha, createHash("sha256").update(png).digest("hex"));
  const fid = li.newId();
  await li.edit("finding", fid, { inspection_id: INSP, title: "Photo of the LN2 tank", evidence_hashes: [sha] });
  const progress = [];
  li.on("upload", (p) => progress.push(p.sent));
  const summary = await li.sync();
  assert.equal(summary.uploaded, 1);
  assert.ok(progress.length >= 5, "chunked: progress reported per chunk");
  assert.equal((await li.evidence("uploaded")).length, 1);
  const token = li.transport.accessToken;
  const r = await fetch(`${server.base}/api/v1/evidence/${sha}`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200);
  assert.equal(createHash("sha256").update(Buffer.from(await r.arrayBuffer())).digest("hex"), sha);
  await li.pull();
  assert.deepEqual(li.missingOnServer(), {}, "nothing missing any more");
  li.close();
});

test("token refresh, the event stream, a revoked device wiped", { timeout: 120_000 }, async () => {
  const li = await tablet("insp.js1");
  await li.sync();
  // an access token the server refuses (as after expiry): refreshed once, transparently
  li.transport.accessToken = "not-a-token";
  await li.sync();
  assert.notEqual(li.transport.accessToken, "not-a-token");
  assert.equal(li.meta.access_token, li.transport.accessToken, "the new pair is kept");

  // the stream tells an online tablet to pull when another tablet pushes
  const zhao = await tablet("insp.js2");
  await zhao.sync();
  let synced = 0;
  const done = new Promise((resolve) => {
    li.on("sync", (s) => {
      if (s.state === "done" && ++synced >= 1) resolve();
    });
  });
  const stop = li.watch();
  await new Promise((r) => setTimeout(r, 500));
  const fid = zhao.newId();
  await zhao.edit("finding", fid, { inspection_id: INSP, title: "From Zhao's tablet" });
  await zhao.sync();
  await done;
  stop();
  // the event may race the first sync: give it a bounded number of tries
  for (let i = 0; i < 20 && !(await li.view("finding", fid)); i++) await li.sync();
  assert.equal((await li.view("finding", fid)).title, "From Zhao's tablet");

  // an admin revokes Li's tablet: the next sync wipes it
  const admin = await staffToken("admin");
  const rv = await api("POST", `/api/v1/devices/${li.deviceId}/revoke`, admin, {});
  assert.equal(rv.status, 200, JSON.stringify(rv.body));
  let revoked = false;
  li.on("revoked", () => (revoked = true));
  await assert.rejects(li.sync(), DeviceRevoked);
  assert.equal(revoked, true);
  assert.equal((await li.records("inspection")).size, 0);
  assert.equal(li.deviceId, "");
  li.close();
  zhao.close();
});
