// Validates a .glb with the Khronos glTF validator; prints its report's summary as JSON on stdout.
//   node tests/js/validate_gltf.mjs mesh.glb
// Exit status: 0 valid (warnings allowed), 1 errors, 2 bad usage.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const validator = require("gltf-validator");
const path = process.argv[2];
if (!path) {
  console.error("usage: node validate_gltf.mjs FILE.glb");
  process.exit(2);
}
const report = await validator.validateBytes(new Uint8Array(readFileSync(path)), { maxIssues: 50 });
const issues = report.issues;
console.log(JSON.stringify({
  errors: issues.numErrors, warnings: issues.numWarnings, infos: issues.numInfos,
  messages: issues.messages.map((m) => `${m.severity} ${m.code} ${m.pointer ?? ""}: ${m.message}`),
  info: report.info,
}));
process.exit(issues.numErrors > 0 ? 1 : 0);
