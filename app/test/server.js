// Starts the real server (`python -m server.cli serve --demo`) on 127.0.0.1 for the
// Node tests, as tests/server/test_process.py does for pytest.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const DEMO_PASSWORD = "inspect-demo-2026";

function python() {
  if (process.env.INSPECTSYNC_PYTHON) return process.env.INSPECTSYNC_PYTHON;
  const venv = join(ROOT, ".venv", "bin", "python");
  return existsSync(venv) ? venv : "python3";
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {any} */ (s.address());
      s.close(() => res(port));
    });
  });
}

/** @returns {Promise<{base: string, stop: () => Promise<void>, output: () => string}>} */
export async function startServer(extraEnv = {}) {
  const data = mkdtempSync(join(tmpdir(), "inspectsync-node-"));
  const port = await freePort();
  const proc = spawn(
    python(),
    ["-m", "server.cli", "serve", "--demo", "--data-dir", data, "--host", "127.0.0.1", "--port", String(port)],
    {
      cwd: ROOT,
      env: { ...process.env, INSPECTSYNC_PASSWORD_TIME_COST: "1", INSPECTSYNC_PASSWORD_MEMORY_KIB: "1024", ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  proc.stdout.on("data", (d) => (out += d));
  proc.stderr.on("data", (d) => (out += d));
  const base = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null) {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(data, { recursive: true, force: true });
  };
  for (let i = 0; i < 600; i++) {
    if (proc.exitCode !== null) throw new Error(`server exited: ${out}`);
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.status === 200) return { base, stop, output: () => out };
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`server did not start: ${out}`);
}
