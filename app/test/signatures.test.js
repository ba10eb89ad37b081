// The sign-off hash is the server's (sync/signatures.py): the same records give the same
// SHA-256, whatever their order or the order of set-like lists.
import { test } from "node:test";
import assert from "node:assert/strict";
import { contentHash, inScope } from "../lib/signatures.js";

// computed by sync.signatures.content_hash over the same records
const PYTHON = "ffd159532b9db6414fca3401bc1eaad6be89fc613de16603029a8471e4141f40";

test("content hash equals the Python server's for the same records", async () => {
  const records = /** @type {Array<[string, string, Record<string, any>]>} */ ([
    ["finding", "f_1", {
      title: "T", status: "draft", classification: "major", linked_items: ["l2:a", "l2:b"],
      references: [{ document: "ICH Q7", section: "2" }, { document: "Annex 1", section: "5" }],
    }],
    ["signoff", "s", { x: 1 }],
    ["response", "i~l2~a~0", { evidence: ["aa", "bb"], note: "读数 ok", value: -150 }],
  ]);
  assert.equal(await contentHash(records), PYTHON);
  records[0][2].title = "T2";
  assert.notEqual(await contentHash(records), PYTHON);
});

test("a link's sign-off covers its responses and the findings linked to its items", () => {
  assert.equal(inScope("link:l2", "response", "i~l2~a~0", {}), true);
  assert.equal(inScope("link:l2", "response", "i~l3~a~0", {}), false);
  assert.equal(inScope("link:l2", "finding", "f", { linked_items: ["l3:x", "l2:y"] }), true);
  assert.equal(inScope("link:l2", "finding", "f", { linked_items: [] }), false);
  assert.equal(inScope("inspection", "finding", "f", {}), true);
  assert.equal(inScope("inspection", "signoff", "s", {}), false);
});
