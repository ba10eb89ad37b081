// Two chunks of one upload at once against the real server: a chunk still streaming in
// (a request the tablet gave up on) while the app's tus client resumes the same upload
// from offset 0. The server lets one write at a time (docs/evidence.md, "One chunk at a
// time"): the app's chunk waits, is answered 409 with the first one's offset, and
// tus-js-client asks HEAD and sends the rest; the file the server keeps is whole.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createHash } from "node:crypto";
import { request } from "node:http";
import { tusUpload } from "../lib/index.js";
import { DEMO_PASSWORD, startServer } from "./server.js";

const INSP = "insp-ds-routine";
const TUS = { "Tus-Resumable": "1.0.0" };
let server;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const b64 = (s) => Buffer.from(s).toString("base64");
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

/** A PATCH whose body trickles in (8 KiB every 30 ms); resolves to [status, offset]. */
function slowPatch(url, token, bytes) {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: "PATCH",
      headers: {
        ...TUS,
        Authorization: `Bearer ${token}`,
        "Content-Type": "application/offset+octet-stream",
        "Content-Length": String(bytes.length),
        "Upload-Offset": "0",
      },
    });
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => resolve([res.statusCode, res.headers["upload-offset"]]));
    });
    req.on("error", reject);
    (async () => {
      for (let at = 0; at < bytes.length; at += 8192) {
        req.write(bytes.subarray(at, at + 8192));
        await sleep(30);
      }
      req.end();
    })();
  });
}

test("two chunks of one upload at once: the app's chunk meets 409, resumes from HEAD, the file is whole", { timeout: 120_000 }, async () => {
  const login = await fetch(`${server.base}/api/v1/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: "insp.js1", password: DEMO_PASSWORD, device: { name: "race tablet" } }),
  });
  const token = (await login.json()).access_token;
  const bytes = Buffer.concat([Buffer.from("89504e470d0a1a0a", "hex"), Buffer.alloc(300_000, 9)]);
  for (let i = 8; i < bytes.length; i += 97) bytes[i] = i % 251; // not all one byte
  const sha = createHash("sha256").update(bytes).digest("hex");
  const created = await fetch(`${server.base}/api/v1/evidence/uploads`, {
    method: "POST",
    headers: {
      ...TUS,
      Authorization: `Bearer ${token}`,
      "Upload-Length": String(bytes.length),
      "Upload-Metadata": `sha256 ${b64(sha)},inspection_id ${b64(INSP)}`,
    },
  });
  assert.equal(created.status, 201);
  const url = new URL(created.headers.get("Location"), server.base).href;
  const half = 150_000;
  const rival = slowPatch(url, token, bytes.subarray(0, half)); // about 0.6 s of body
  await sleep(150); // it holds the upload now
  const answers = [];
  await tusUpload({
    endpoint: `${server.base}/api/v1/evidence/uploads`,
    token: () => token,
    bytes: new Uint8Array(bytes),
    metadata: { sha256: sha, inspection_id: INSP },
    url,
    onUrl: () => {},
    onResponse: (method, status) => answers.push(`${method} ${status}`),
  });
  assert.deepEqual(await rival, [204, String(half)]);
  // HEAD said 0 (the rival's bytes were not recorded yet); its chunk at 0 waited for
  // the rival, met its offset, and the client resumed from HEAD
  assert.deepEqual(answers, ["HEAD 200", "PATCH 409", "HEAD 200", "PATCH 204"]);
  const head = await fetch(url, { method: "HEAD", headers: { ...TUS, Authorization: `Bearer ${token}` } });
  assert.equal(head.headers.get("Upload-Offset"), String(bytes.length));
});
