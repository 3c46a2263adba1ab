// spec/peers/llama3_tokenizer.mjs — the reference encoder we compare against:
// the JavaScript Llama 3 tokenizer of npm's llama3-tokenizer-js (make data-llama3
// unpacks it into data/llama3/llama3-tokenizer-js).
//
//   node spec/peers/llama3_tokenizer.mjs encode TEXT_FILE IDS_FILE   ids, one per line
//   node spec/peers/llama3_tokenizer.mjs bench TEXT_FILE [SECONDS]   MB/s on one core
//
// Plain text: no BOS/EOS, and special-token names are ordinary text (by default
// the package maps "<|begin_of_text|>" in the text to its special id).
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const bundle = resolve(root, "data/llama3/llama3-tokenizer-js/bundle/llama3-tokenizer-with-baked-data.js");
const { default: tokenizer } = await import(pathToFileURL(bundle).href);
const PLAIN = { bos: false, eos: false, specialTokenRegex: /(?!)/g };

const [mode, textPath, arg] = process.argv.slice(2);
const text = readFileSync(textPath, "utf8");
if (mode === "encode") {
  const ids = tokenizer.encode(text, PLAIN);
  writeFileSync(arg, ids.join("\n") + "\n");
} else if (mode === "bench") {
  const seconds = Number(arg || 3), bytes = Buffer.byteLength(text, "utf8");
  let runs = 0, tokens = 0;
  const t0 = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < seconds || runs === 0) {
    tokens = tokenizer.encode(text, PLAIN).length;
    runs++;
    elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  }
  console.log(JSON.stringify({ bytes, tokens, runs, seconds: elapsed, mb_per_s: (bytes * runs) / elapsed / 1e6 }));
} else {
  console.error("usage: node spec/peers/llama3_tokenizer.mjs encode TEXT IDS | bench TEXT [SECONDS]");
  process.exit(2);
}
