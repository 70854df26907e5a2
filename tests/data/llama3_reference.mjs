// Independent Llama 3 tokenizations for tests/data/llama3_tokenizer_test.sh: Hugging Face's
// tokenizers.js (@huggingface/tokenizers) on the real tokenizer.json, and llama3-tokenizer-js
// (its own BPE and data, checked by its authors against Meta's tokenizer).
//
//   node llama3_reference.mjs corpus NODE_MODULES REPO OUT/corpus.jsonl
//       writes the comparison corpus: one JSON string per line
//   node llama3_reference.mjs encode NODE_MODULES TOKENIZER_DIR IN.jsonl OUT_DIR
//       OUT_DIR/hf.jsonl, OUT_DIR/l3.jsonl: one JSON array of ids per line;
//       OUT_DIR/hf_decoded.jsonl: tokenizers.js's decode of its own ids (special tokens skipped,
//       no clean-up of spaces); OUT_DIR/random_ids.jsonl + random_decoded.jsonl: id sequences
//       that cut characters in two, and tokenizers.js's decode of them
//   node llama3_reference.mjs compare WHAT OURS.jsonl REF.jsonl [CORPUS.jsonl]
//       line by line; prints each difference (at most 5) and "WHAT: N lines, M differ"; exit 1 if any.
//       With CORPUS, lines whose text holds "<|" are left out: llama3-tokenizer-js knows the Llama
//       3.1 special-token names (128008 is <|eom_id|> there, <|reserved_special_token_4|> in this
//       Llama 3 file), so text naming special tokens is compared with tokenizers.js only.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [mode, nodeModules, src, input, out] = process.argv.slice(2);
const load = (rel) => import(pathToFileURL(path.join(nodeModules, rel)).href);
const jsonl = (rows) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

if (mode === 'corpus') {
  const docs = [];
  // The trilingual (ca/es/en) GIMP manual, 8 lines per document so newlines occur inside documents.
  for (const lang of ['ca', 'es', 'en']) {
    const lines = fs.readFileSync(path.join(src, `assets/corpus/gimp_help/gimp_help_${lang}.txt`), 'utf8').split('\n');
    for (let i = 0; i < lines.length; i += 8) docs.push(lines.slice(i, i + 8).join('\n'));
  }
  // Code: whole files.
  for (const dir of ['src/data', 'src/model', 'tools', 'scripts'])
    for (const f of fs.readdirSync(path.join(src, dir)).sort())
      if (fs.statSync(path.join(src, dir, f)).isFile()) docs.push(fs.readFileSync(path.join(src, dir, f), 'utf8'));
  // Numbers, emoji, odd whitespace, CRLF, scripts, contractions, special tokens and near misses.
  docs.push(
    '', ' ', '  ', '\n', '\r\n', '\r', '\t', 'a', '1', '12', '123', '1234', '1234567890123',
    'Numbers: 3.14159, -42, 1e-5, 0x1F, 12,345,678.90, 2024-06-01, 1/3, ½, ²³, ٣٤٥, १२३, ⅷ',
    'Emoji: 👍 👍🏽 👨‍👩‍👧‍👦 🇪🇸🇨🇦 ❤️ 🫠 😀😃😄 ✨x✨',
    'odd  spaces\u00a0nbsp\u2003em\u3000ideographic\u2009thin \t tab\v vt\f ff  \u200b zwsp \u2028ls\u2029ps end   ',
    'line one\r\nline two\r\n\r\nline four\r\n', 'trailing\n\n\n', ' \n \n', 'x \n\n y', '   leading',
    'mixed \r\n \n\r \r\r\n\n  \t\n',
    "DON'T I'M we'Ll they'RE it's O'Neil 'quoted' rock'n'roll ſ's",
    'Català: l·l, això, què; Español: ¿Qué tal? ¡Olé! niño; English: naïve café résumé',
    'Ελληνικά Русский текст 日本語のテキスト 中文文本 한국어 텍스트 العربية עברית हिन्दी ไทย',
    'combining: e\u0301 a\u0308 n\u0303 Z\u0351\u0357\u0300 ज़',
    // Not U+0085 or U+FEFF: JavaScript's \s (both references) differs there from the Rust
    // regex engines of Meta's and Hugging Face's tokenizers, so neither reference is right.
    'controls: \u0001\u0002\u001f\u007f \ufffdrep \u00ad soft hyphen',
    'Special <|begin_of_text|>tokens<|end_of_text|> in <|eot_id|>text <|start_header_id|>user<|end_header_id|>\n\nhi',
    '<|reserved_special_token_5|><|reserved_special_token_250|> near <|eot_id| misses <|eot_id|>> <| eot_id|> <|EOT_ID|>',
    '<|eot_id|>', 'a<|eot_id|><|eot_id|>b',
    'x'.repeat(3000), ' '.repeat(500) + 'y', '9'.repeat(1000), 'ab'.repeat(700), '\n'.repeat(300),
    '```python\ndef f(x):\n    return {"a": [1, 2, 3]}  # comment\n```\n',
    'URL https://example.com/path?q=1&r=ü#frag email a.b@c.de @user #tag $100 ~/dir C:\\Windows\\',
  );
  fs.writeFileSync(input, jsonl(docs));  // the 4th argument is the output here
} else if (mode === 'encode') {
  const { Tokenizer } = await load('@huggingface/tokenizers/dist/tokenizers.mjs');
  const l3 = (await load('llama3-tokenizer-js/bundle/llama3-tokenizer-with-baked-data.js')).default;
  const tj = JSON.parse(fs.readFileSync(path.join(src, 'tokenizer.json'), 'utf8'));
  const tc = JSON.parse(fs.readFileSync(path.join(src, 'tokenizer_config.json'), 'utf8'));
  const hf = new Tokenizer(tj, tc);
  const docs = fs.readFileSync(input, 'utf8').split('\n').filter((l) => l.length).map((l) => JSON.parse(l));
  const dec = { skip_special_tokens: true, clean_up_tokenization_spaces: false };
  const hfIds = docs.map((d) => hf.encode(d, { add_special_tokens: false }).ids);
  fs.writeFileSync(path.join(out, 'hf.jsonl'), jsonl(hfIds));
  fs.writeFileSync(path.join(out, 'l3.jsonl'), jsonl(docs.map((d) => l3.encode(d, { bos: false, eos: false }))));
  fs.writeFileSync(path.join(out, 'hf_decoded.jsonl'), jsonl(hfIds.map((ids) => (ids.length ? hf.decode(ids, dec) : ''))));
  // Runs of ids that start or end inside a multi-byte character, from a fixed LCG.
  let s = 12345;
  const rnd = (n) => { s = (s * 1103515245 + 12345) % 2147483648; return s % n; };
  const cut = [];
  for (const ids of hfIds) if (ids.length > 4 && cut.length < 400) {
    const a = rnd(ids.length - 2), b = a + 1 + rnd(Math.min(6, ids.length - a - 1));
    cut.push(ids.slice(a, b));
  }
  for (let k = 0; k < 200; ++k) cut.push(Array.from({ length: 1 + rnd(5) }, () => rnd(128256)));
  fs.writeFileSync(path.join(out, 'random_ids.jsonl'), jsonl(cut));
  fs.writeFileSync(path.join(out, 'random_decoded.jsonl'), jsonl(cut.map((ids) => hf.decode(ids, dec))));
} else if (mode === 'compare') {
  const [what, ours, ref, corpus] = [nodeModules, src, input, out];
  const lines = (f) => fs.readFileSync(f, 'utf8').split('\n').filter((l) => l.length);
  const a = lines(ours), b = lines(ref), texts = corpus ? lines(corpus).map((l) => JSON.parse(l)) : null;
  let differ = 0, compared = 0;
  if (a.length !== b.length) { console.error(`${what}: ${a.length} lines vs ${b.length} in the reference`); process.exit(1); }
  for (let i = 0; i < a.length; ++i) {
    if (texts && texts[i].includes('<|')) continue;
    ++compared;
    if (a[i] === b[i]) continue;
    if (++differ <= 5) console.error(`${what}: line ${i + 1} differs\n  ours: ${a[i].slice(0, 400)}\n  ref:  ${b[i].slice(0, 400)}` +
                                      (texts ? `\n  text: ${JSON.stringify(texts[i]).slice(0, 400)}` : ''));
  }
  console.log(`${what}: ${compared} lines, ${differ} differ`);
  process.exit(differ ? 1 : 0);
} else {
  console.error('usage: llama3_reference.mjs corpus|encode|compare ...');
  process.exit(2);
}
