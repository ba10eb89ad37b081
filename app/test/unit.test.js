// Unit tests of the client library: outbox, rebase, results, evict, resync, retries,
// missing evidence. A fake transport stands in for the server; fake-indexeddb for the
// browser's IndexedDB.
import assert from "node:assert/strict";
import { test } from "node:test";
import { IDBFactory } from "fake-indexeddb";
import { Tablet, TransportError, overlay, parseRetryAfter, hlc } from "../lib/index.js";

const HLC = "001767603600000.00000.server";

/** A transport answering from queues the test fills; it records what it was sent. */
class FakeTransport {
  constructor() {
    this.pulls = [];
    this.pushes = [];
    this.pages = [];
    this.answers = [];
  }
  async pull(request) {
    this.pulls.push(structuredClone(request));
    const page = this.pages.shift();
    if (page instanceof Error) throw page;
    return page ?? emptyPage(request.cursor);
  }
  async push(request) {
    this.pushes.push(structuredClone(request));
    const answer = this.answers.shift();
    if (answer instanceof Error) throw answer;
    if (typeof answer === "function") return answer(request);
    return answer ?? { protocol: 1, results: request.mutations.map((m) => applied(m, 1)), hlc: HLC };
  }
}

function emptyPage(cursor) {
  return { protocol: 1, changes: [], evict: [], cursor: cursor || "c0", has_more: false, resync_required: false, hlc: HLC, missing_evidence: null };
}
function page(changes, o = {}) {
  return { ...emptyPage("c1"), changes, ...o };
}
function applied(m, rev) {
  return { status: "applied", mid: m.mid, kind: m.kind, id: m.id, rev };
}

async function tablet(o = {}) {
  const factory = o.factory || new IDBFactory();
  const transport = o.transport || new FakeTransport();
  const waits = [];
  const t = await Tablet.open({
    indexedDB: factory,
    transport,
    now: () => 1767603600000,
    sleep: async (s) => void waits.push(s),
    jitter: () => 0,
    ...o.options,
  });
  if (!t.deviceId) await t.setMeta({ device_id: "dev_test" });
  return { t, transport, factory, waits };
}

const RID = "insp-1~l2~cb_history~0";

test("an edit shows at once and waits in the outbox, which survives a restart; mids are never reused", async () => {
  const { t, factory, transport } = await tablet();
  const m1 = await t.edit("response", RID, { value: "yes" });
  const m2 = await t.edit("finding", "f_1", { inspection_id: "insp-1", title: "LN2 alarm" });
  assert.equal(m1, "dev_test:1");
  assert.equal(m2, "dev_test:2");
  assert.deepEqual(await t.view("response", RID), { value: "yes" });
  t.close();
  const again = await Tablet.open({ indexedDB: factory, transport });
  assert.deepEqual((await again.pending()).map((p) => p.mid), ["dev_test:1", "dev_test:2"]);
  await again.push();
  assert.equal((await again.pending()).length, 0);
  assert.equal(await again.edit("response", RID, { value: "no" }), "dev_test:3");
  const sent = transport.pushes[0].mutations;
  assert.equal(sent[0].base_rev, 0);
  assert.match(sent[0].hlc, /^\d{15}\.\d{5}\.dev_test$/);
  assert.ok(sent[1].hlc > sent[0].hlc, "the clock ticks with every edit");
});

test("rebase: pending edits stay over pulled data, with the base_rev they were made on", async () => {
  const { t, transport } = await tablet();
  transport.pages.push(page([{ kind: "finding", id: "f_1", rev: 1, seq: 5, data: { inspection_id: "i", title: "A", classification: "major" } }]));
  await t.pull();
  await t.edit("finding", "f_1", { title: "A, reworded" });
  // someone else changed another field meanwhile; the pull brings revision 2
  transport.pages.push(page([{ kind: "finding", id: "f_1", rev: 2, seq: 9, data: { inspection_id: "i", title: "A", classification: "critical" } }]));
  await t.pull();
  assert.deepEqual(await t.view("finding", "f_1"), { inspection_id: "i", title: "A, reworded", classification: "critical" });
  assert.deepEqual((await t.serverCopy("finding", "f_1")).rev, 2);
  await t.push();
  assert.equal(transport.pushes[0].mutations[0].base_rev, 1, "the base is the revision the edit was made on");
  assert.deepEqual(transport.pushes[0].mutations[0].fields, { title: "A, reworded" }, "only the changed fields");
});

test("overlay: a delete hides the record, a later upsert brings it back", () => {
  assert.equal(overlay({ a: 1 }, [{ n: 1, op: "delete", fields: {} }]), null);
  assert.deepEqual(overlay({ a: 1 }, [{ n: 2, op: "upsert", fields: { b: 2 } }, { n: 1, op: "delete", fields: {} }]), { b: 2 });
});

test("results per kind: applied and merged leave; conflict and rejected leave and are kept; duplicate is its original; unknown stays pending", async () => {
  const { t, transport } = await tablet();
  transport.pages.push(page([{ kind: "response", id: RID, rev: 3, seq: 1, data: { value: -150 } }]));
  await t.pull();
  const a = await t.edit("finding", "f_a", { inspection_id: "i", title: "a" });
  const b = await t.edit("finding", "f_b", { inspection_id: "i", title: "b" });
  const c = await t.edit("finding", "f_c", { classification: "other" });
  const r = await t.edit("response", RID, { value: -100 });
  const d = await t.edit("finding", "f_d", { inspection_id: "i", title: "d" });
  const u = await t.edit("finding", "f_u", { inspection_id: "i", title: "u" });
  const conflict = { conflict_id: "cf_1", field: "classification", winner: "critical", flagged: true, values: [{ value: "critical", by: "u2" }, { value: "other", by: "u1" }] };
  transport.answers.push({
    protocol: 1,
    hlc: "001767603900000.00008.server",
    results: [
      { status: "applied", mid: a, kind: "finding", id: "f_a", rev: 1 },
      { status: "merged", mid: b, kind: "finding", id: "f_b", rev: 3, concurrent_fields: ["title"] },
      { status: "conflict", mid: c, kind: "finding", id: "f_c", rev: 4, conflicts: [conflict] },
      { status: "rejected", mid: r, kind: "response", id: RID, code: "out_of_limits", field: "value", message: "-100 °C is above the maximum -135.0", quarantine_id: "q_1" },
      { status: "duplicate", mid: d, original: { status: "applied", mid: d, kind: "finding", id: "f_d", rev: 1 } },
      { status: "deferred", mid: u },
    ],
  });
  const answered = await t.push();
  assert.equal(answered.length, 6);
  assert.deepEqual((await t.pending()).map((p) => p.mid), [u], "an unknown status keeps its mutation pending");
  const results = await t.results();
  assert.deepEqual(results.map((x) => [x.mid, x.status]).sort(), [[c, "conflict"], [r, "rejected"], [u, "unknown"]].sort());
  const rejected = (await t.results("rejected"))[0];
  assert.equal(rejected.detail.code, "out_of_limits");
  assert.equal(rejected.detail.field, "value");
  assert.deepEqual(rejected.sent, { value: -100 }, "the value the inspector typed is kept to show");
  assert.deepEqual(await t.view("response", RID), { value: -150 }, "the view falls back to the server's copy");
  assert.deepEqual((await t.results("conflict"))[0].detail.conflicts[0].values.map((v) => v.value), ["critical", "other"]);
  assert.ok(t.meta.hlc > "001767603900000.00008.server", "the server's clock is merged");
  await t.dismiss(r);
  assert.equal((await t.results("rejected")).length, 0);
});

test("pull: every page, evict before changes, tombstones keep their rev as the next base", async () => {
  const { t, transport } = await tablet();
  transport.pages.push(
    page([{ kind: "inspection", id: "i1", rev: 1, seq: 1, data: { title: "one" } }, { kind: "finding", id: "f_1", rev: 1, seq: 2, data: { title: "x" } }], { has_more: true, cursor: "p1" }),
    page([{ kind: "finding", id: "f_1", rev: 2, seq: 3, deleted: true }], { cursor: "p2" }),
  );
  assert.equal(await t.pull(), 3);
  assert.deepEqual(transport.pulls.map((p) => p.cursor), [null, "p1"]);
  assert.equal(t.cursor, "p2");
  assert.equal(await t.view("finding", "f_1"), null);
  await t.edit("finding", "f_1", { inspection_id: "i1", title: "again" });
  assert.equal((await t.pending())[0].base_rev, 2);
  transport.pages.push(page([], { evict: [{ kind: "inspection", id: "i1" }], cursor: "p3" }));
  await t.pull();
  assert.equal((await t.records("inspection")).size, 0, "evicted");
  assert.equal((await t.pending()).length, 1, "evictions leave the outbox alone");
});

test("resync_required: local records dropped, the outbox kept, pulled again from no cursor", async () => {
  const { t, transport } = await tablet();
  transport.pages.push(page([{ kind: "inspection", id: "i1", rev: 1, seq: 1, data: { title: "one" } }], { cursor: "old" }));
  await t.pull();
  await t.edit("response", RID, { value: "no" });
  transport.pages.push(
    { ...emptyPage(""), cursor: "", resync_required: true },
    page([{ kind: "inspection", id: "i2", rev: 1, seq: 9, data: { title: "two" } }], { cursor: "new" }),
  );
  await t.pull();
  assert.deepEqual(transport.pulls.slice(1).map((p) => p.cursor), ["old", null]);
  assert.deepEqual([...(await t.records("inspection")).keys()], ["i2"]);
  assert.equal((await t.pending()).length, 1);
});

test("retries: 5xx/429/network retried with doubling, jittered backoff, never sooner than Retry-After; bounded", async () => {
  const transport = new FakeTransport();
  const { t, waits } = await tablet({ transport, options: { backoff: 0.5, retries: 3, jitter: () => 0.5 } });
  transport.pages.push(new TransportError("503 overloaded", 7), new TransportError("network"), emptyPage("c"));
  await t.pull();
  assert.deepEqual(waits, [7 * 1.5, 1.0 * 1.5]);
  transport.pages.push(...Array.from({ length: 4 }, () => new TransportError("down")));
  await assert.rejects(t.pull(), TransportError);
  assert.equal(parseRetryAfter("12"), 12);
  assert.equal(parseRetryAfter("100000"), 300);
  assert.equal(parseRetryAfter(new Date(Date.now() + 30_000).toUTCString()) > 25, true);
  assert.equal(parseRetryAfter("soon"), null);
});

test("a browser that says it is offline: the first failure ends the sync, no waiting", async () => {
  const transport = new FakeTransport();
  const { t, waits } = await tablet({ transport, options: { retries: 3 } });
  const before = Object.getOwnPropertyDescriptor(globalThis, "navigator");
  Object.defineProperty(globalThis, "navigator", { value: { onLine: false }, configurable: true });
  try {
    transport.pages.push(new TransportError("network"), emptyPage("c"));
    await assert.rejects(t.pull(), TransportError);
    assert.deepEqual(waits, []);
    assert.equal(transport.pulls.length, 1);
  } finally {
    if (before) Object.defineProperty(globalThis, "navigator", before);
    else delete globalThis.navigator;
  }
  await t.pull(); // online again (no navigator says otherwise): the page waiting is pulled
  assert.equal(t.cursor, "c");
});

test("a resent push after a lost answer is answered as duplicates, applied once", async () => {
  const { t, transport } = await tablet();
  await t.edit("response", RID, { value: "yes" });
  transport.answers.push(new TransportError("timeout"), (req) => ({ protocol: 1, hlc: HLC, results: req.mutations.map((m) => ({ status: "duplicate", mid: m.mid, original: applied(m, 1) })) }));
  await t.push();
  assert.equal(transport.pushes.length, 2);
  assert.deepEqual(transport.pushes[0], transport.pushes[1], "the same batch, the same mids");
  assert.equal((await t.pending()).length, 0);
  assert.equal((await t.results()).length, 0);
});

test("batches of batchSize; sync = pull, push, pull", async () => {
  const { t, transport } = await tablet({ options: { batchSize: 2 } });
  for (let i = 0; i < 5; i++) await t.edit("response", `insp-1~l2~item${i}~0`, { value: "yes" });
  const summary = await t.sync();
  assert.deepEqual(transport.pushes.map((p) => p.mutations.length), [2, 2, 1]);
  assert.equal(transport.pulls.length, 2);
  assert.deepEqual(summary, { pulled: 0, pushed: 5, pending: 0, uploaded: 0 });
  assert.ok(t.meta.last_sync);
});

test("evidence: SHA-256 on the device, kept until uploaded, the server's missing list honoured", async () => {
  const uploads = [];
  const transport = new FakeTransport();
  transport.upload = async (o) => {
    uploads.push([o.metadata.sha256, o.metadata.inspection_id]);
    o.onProgress(o.bytes.length, o.bytes.length);
  };
  const { t } = await tablet({ transport });
  const bytes = new TextEncoder().encode("a photo");
  const sha = await t.attach(bytes, "insp-1", { filename: "p.jpg", type: "image/jpeg" });
  const { createHash } = await import("node:crypto");
  assert.equal(sha, createHash("sha256").update(bytes).digest("hex"));
  await t.edit("finding", "f_1", { inspection_id: "insp-1", title: "x", evidence_hashes: [sha] });
  await t.sync();
  assert.equal(transport.pushes.length, 1, "the finding went first");
  assert.deepEqual(uploads, [[sha, "insp-1"]]);
  assert.equal((await t.evidence("uploaded")).length, 1);
  // the server lost the file, and a second inspection names it too
  transport.pages.push(page([], { missing_evidence: { "insp-1": [sha], "insp-2": [sha, "ab".repeat(32)] } }));
  await t.pull();
  assert.deepEqual((await t.evidence("pending")).map((e) => e.inspection_id).sort(), ["insp-1", "insp-2"]);
  assert.equal(transport.pulls.at(-1).want_missing_evidence, true);
  await t.uploadEvidence();
  assert.deepEqual(t.missingOnServer(), { "insp-2": ["ab".repeat(32)] }, "what another tablet holds stays listed");
});

test("evidence: the bytes of uploaded photos can be released, those still waiting stay", async () => {
  const transport = new FakeTransport();
  transport.upload = async () => {};
  const { t } = await tablet({ transport });
  const sent = await t.attach(new TextEncoder().encode("uploaded photo"), "insp-1", { type: "image/jpeg" });
  await t.uploadEvidence();
  transport.upload = async () => {
    throw new TransportError("network");
  };
  const waiting = await t.attach(new TextEncoder().encode("waiting photo"), "insp-1", { type: "image/jpeg" });
  assert.equal(await t.releaseUploaded(), "uploaded photo".length);
  assert.equal(await t.file(sent), null);
  assert.notEqual(await t.file(waiting), null, "a photo not uploaded yet is never released");
  assert.deepEqual((await t.evidence()).map((e) => e.state).sort(), ["pending", "uploaded"]);
  assert.equal(await t.releaseUploaded(), 0);
});

test("hlc: the format and rules of sync/hlc.py", () => {
  const a = hlc.tick({ wall: 0, counter: 0, node: "d" }, 1000, "d");
  assert.equal(hlc.format(a), "000000000001000.00000.d");
  const b = hlc.tick(a, 900, "d");
  assert.equal(hlc.format(b), "000000000001000.00001.d");
  const c = hlc.receive(b, hlc.parse("000000000002000.00004.server"), 1500, "d");
  assert.equal(hlc.format(c), "000000000002000.00005.d");
  assert.equal(hlc.format(hlc.tick({ wall: 5, counter: 99_999, node: "d" }, 1, "d")), "000000000000006.00000.d");
});
