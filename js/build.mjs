// Bundles the widget into the Python package: nbconvo/static/widget.{js,css}.
import { build } from "esbuild";

await build({
  entryPoints: ["src/widget.ts"],
  outfile: "../nbconvo/static/widget.js",
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
});
