// Builds the console into ../app/console_dist (git-ignored): one script, one stylesheet, the page, Leaflet's images.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";

const out = new URL("../app/console_dist/", import.meta.url).pathname;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: "src/main.js", style: "src/style.css" },
  bundle: true,
  minify: true,
  sourcemap: false,
  format: "iife",
  target: ["chrome100", "firefox100", "safari15"],
  outdir: out,
  loader: { ".png": "file", ".svg": "file" },
  assetNames: "img/[name]-[hash]",
  legalComments: "none",
  logLevel: "warning",
});
copyFileSync("index.html", out + "index.html");
