// The peers of bench/llama3_tokenize_bench.sh: Llama 3 encoding throughput of tiktoken (npm,
// Rust compiled to WASM) loaded with Llama 3's ranks and pattern, and of Hugging Face's
// tokenizers.js on the same tokenizer.json, over the documents of the given files (one per
// non-blank line), with THREADS worker threads each taking a contiguous share. Best of REPS; each
// repetition builds fresh tokenizers. Prints one JSON line per peer: name, seconds, bytes,
// tokens, checksum (the C++ bench's: c = c * 1000003 + id + 1 mod 2^64, in document order).
//
//   node llama3_tokenize_peers.mjs NODE_MODULES TOKENIZER_DIR THREADS REPS FILE...
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

// Llama 3's pre-tokenizer pattern, as Meta's tiktoken-based tokenizer.py gives it.
const PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// GPT-2's byte <-> character map: a tokenizer.json piece back to its bytes.
function charToByte() {
  const m = new Map();
  let next = 256;
  for (let b = 0; b < 256; ++b) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    m.set(String.fromCodePoint(printable ? b : next++), b);
  }
  return m;
}

async function makeEncoder(name, nodeModules, dir) {
  const load = (rel) => import(pathToFileURL(path.join(nodeModules, rel)).href);
  const tj = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
  if (name === 'tiktoken') {
    const { Tiktoken } = await load('tiktoken/lite/tiktoken.cjs');  // the WASM build, ranks given here
    const c2b = charToByte();
    const ranks = Object.entries(tj.model.vocab)
      .map(([piece, id]) => Buffer.from([...piece].map((c) => c2b.get(c))).toString('base64') + ' ' + id)
      .join('\n');
    const special = Object.fromEntries(tj.added_tokens.map((t) => [t.content, t.id]));
    const enc = new Tiktoken(ranks, special, PATTERN);
    return (text) => enc.encode_ordinary(text);
  }
  const { Tokenizer } = await load('@huggingface/tokenizers/dist/tokenizers.mjs');
  const tc = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  const tok = new Tokenizer(tj, tc);
  return (text) => tok.encode(text, { add_special_tokens: false }).ids;
}

if (!isMainThread) {
  const { name, nodeModules, dir, docs } = workerData;
  const encode = await makeEncoder(name, nodeModules, dir);
  parentPort.postMessage('ready');
  parentPort.once('message', () => {
    const ids = docs.map((d) => Array.from(encode(d)));
    parentPort.postMessage(ids);
  });
} else {
  const [nodeModules, dir, threadsArg, repsArg, ...files] = process.argv.slice(2);
  const threads = Number(threadsArg), reps = Number(repsArg);
  const docs = [];
  let bytes = 0;
  for (const f of files)
    for (const line of fs.readFileSync(f, 'utf8').split('\n'))
      if (/[^ \t\r\n\f\v]/.test(line)) { docs.push(line); bytes += Buffer.byteLength(line); }
  const share = Math.ceil(docs.length / threads);
  for (const name of ['tiktoken', 'tokenizers.js']) {
    let best = Infinity, all = null;
    for (let r = 0; r < reps; ++r) {
      // Workers load their tokenizer first; the clock runs from "go" to the last result.
      const workers = [];
      for (let t = 0; t < threads; ++t)
        workers.push(new Worker(new URL(import.meta.url), {
          workerData: { name, nodeModules, dir, docs: docs.slice(t * share, (t + 1) * share) } }));
      await Promise.all(workers.map((w) => new Promise((ok) => w.once('message', ok))));
      const t0 = process.hrtime.bigint();
      const parts = await Promise.all(workers.map((w) => new Promise((ok) => { w.once('message', ok); w.postMessage('go'); })));
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      await Promise.all(workers.map((w) => w.terminate()));
      if (s < best) best = s;
      all = parts.flat();
    }
    let checksum = 0n, tokens = 0;
    const M = (1n << 64n) - 1n;
    for (const ids of all) for (const id of ids) { checksum = (checksum * 1000003n + BigInt(id) + 1n) & M; ++tokens; }
    console.log(JSON.stringify({ name, seconds: best, bytes, tokens, checksum: checksum.toString(16).padStart(16, '0') }));
  }
}
