// Copies the npm packages the app needs into served files, at install time (make
// install runs `npm ci` then this): each package bundled once into one ES module under
// www/vendor/, so the browser loads them from our own server (no CDN, no request
// outside it). The library imports them by their package names; the app's import map
// (www/index.html) points those names at these files.
import { build } from "esbuild";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "www", "vendor");
mkdirSync(out, { recursive: true });

const packages = { "tus-js-client": "tus.js", "@msgpack/msgpack": "msgpack.js" };
for (const [name, file] of Object.entries(packages)) {
  await build({
    stdin: { contents: `export * from ${JSON.stringify(name)};`, resolveDir: here },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    minify: true,
    legalComments: "inline",
    outfile: join(out, file),
    logLevel: "warning",
  });
}
writeFileSync(join(out, "README"), "Built by app/build.mjs at install time from node_modules; not committed.\n");
console.log(`vendor bundles in ${out}: ${Object.values(packages).join(", ")}`);
