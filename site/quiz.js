/* AlignLab's chapter quizzes on the static site: the browser twin of alignlab/quiz/check.py.

The build replaces each quiz cell with <div class="alignlab-quiz" data-bank="_static/banks/NN.json">;
this script fetches that bank (the encoded JSON shipped with the package, unchanged) and renders
it: per question a div.aq-question[data-id] with p.aq-text, its inputs, button.aq-check and
div.aq-feedback. Nothing readable about answers is on the page: an answer is hashed and compared,
and feedback, hints and explanations are decoded only when Check is pressed.

The checker is a line-by-line port of alignlab.quiz.bank (digest, decode, normalise) and
alignlab.quiz.check (parse_number, near_miss, check), down to Python's float() syntax, str.strip()
whitespace, str.casefold() and repr() in error messages: tests/quiz_vectors.json holds answers with
Python's verdicts, and site/check_vectors.mjs runs them through this file (tests/test_quiz_vectors.py
runs both). No dependencies, no build step; loads with <script src>, and require()s from Node 20.
*/
(function () {
  "use strict";

  class QuizError extends Error {
    /** An answer the quiz cannot read; the message is meant for a student (Python's QuizError). */
    constructor(message) { super(message); this.name = "QuizError"; }
  }

  // --- Python's string primitives ---------------------------------------------------------

  const PY_SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
  const STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, "g"); // str.strip(): str.isspace() chars
  const ALNUM = "\\p{L}\\p{N}"; // Python's str.isalnum() is exactly the L* and N* categories
  const WORD = new RegExp(`(?<![${ALNUM}])-?\\p{Nd}+(?:\\.\\p{Nd}+)?|[${ALNUM}]+`, "gu");
  const POSSESSIVE = new RegExp(`(?<=[${ALNUM}_])'s(?![${ALNUM}_])`, "gu"); // (?<=\w)'s\b
  const CHEROKEE = /[\u13a0-\u13fd\uab70-\uabbf]/u;
  const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u; // not str.isprintable()

  const pyStrip = (s) => s.replace(STRIP, "");

  /** str.casefold(), one character at a time: lower, then upper-lower for the full folds (ß → ss,
   * ς → σ, ᾳ → αι); Cherokee folds to its capitals and dotless ı stays, as in Python. */
  function casefold(text) {
    let out = "";
    for (const ch of text) {
      if (CHEROKEE.test(ch)) out += ch.toUpperCase();
      else out += ch === "\u0131" ? ch : ch.toLowerCase().toUpperCase().toLowerCase();
    }
    return out;
  }

  /** alignlab.quiz.bank.normalise: NFKC, case-folded, possessives dropped, only the words kept. */
  function normalise(text) {
    let t = casefold(text.normalize("NFKC")).replaceAll("\u2212", "-");
    t = t.replace(/[\u2018\u2019\u02bc\u0060\u00b4]/gu, "'");
    t = t.replace(POSSESSIVE, "").replaceAll("'", "");
    return Array.from(t.matchAll(WORD), (m) => m[0]).join(" ");
  }

  function hex(n, width) { return n.toString(16).padStart(width, "0"); }

  /** Python's repr() of what a student gave, as the error messages quote it. */
  function pyRepr(value) {
    if (value === null || value === undefined) return "None";
    if (typeof value === "boolean") return value ? "True" : "False";
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : pyFloatRepr(value);
    if (Array.isArray(value)) return `[${value.map(pyRepr).join(", ")}]`;
    if (typeof value !== "string") return String(value);
    const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
    let out = quote;
    for (const ch of value) {
      const cp = ch.codePointAt(0);
      if (ch === quote || ch === "\\") out += "\\" + ch;
      else if (ch === "\t") out += "\\t";
      else if (ch === "\n") out += "\\n";
      else if (ch === "\r") out += "\\r";
      else if (cp < 0x20 || cp === 0x7f) out += "\\x" + hex(cp, 2);
      else if (cp < 0x7f || ch === " " || !UNPRINTABLE.test(ch)) out += ch;
      else out += cp <= 0xff ? "\\x" + hex(cp, 2) : cp <= 0xffff ? "\\u" + hex(cp, 4) : "\\U" + hex(cp, 8);
    }
    return out + quote;
  }

  function pyFloatRepr(x) {
    if (!Number.isFinite(x)) return Number.isNaN(x) ? "nan" : x > 0 ? "inf" : "-inf";
    const [mant, e] = x.toExponential().split("e"); // shortest round-trip digits, as Python's repr
    const exp = Number(e);
    if (exp < -4 || exp >= 16) return `${mant}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
    const s = String(x);
    return s.includes(".") || s.includes("e") ? s : s + ".0";
  }

  /** The first `p` significant digits of x > 0 and its exponent, ties to even on the exact value
   * as Python rounds (toExponential breaks an exact tie, 1234565 → 1.23457e+06, upwards). */
  function significant(x, p) {
    const [mant, e] = x.toExponential(p - 1).split("e");
    const [full, fe] = x.toExponential(99).split("e"); // exact for any tie a double can hold
    const digits = full.replace(".", "");
    if (/^50*$/.test(digits.slice(p)) && Number(digits[p - 1]) % 2 === 0) return [digits.slice(0, p), Number(fe)];
    return [mant.replace(".", ""), Number(e)];
  }

  /** format(x, "g"): six significant digits, trailing zeros dropped, 1e-05 style exponents. */
  function formatG(x) {
    if (x === 0 || x < 0) return x === 0 ? (Object.is(x, -0) ? "-0" : "0") : "-" + formatG(-x);
    const [digits, exp] = significant(x, 6);
    const trim = (int, frac) => (frac.replace(/0+$/, "") ? `${int}.${frac.replace(/0+$/, "")}` : int);
    if (exp < -4 || exp >= 6) {
      return `${trim(digits[0], digits.slice(1))}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
    }
    return exp >= 0 ? trim(digits.slice(0, exp + 1), digits.slice(exp + 1)) : trim("0", "0".repeat(-exp - 1) + digits);
  }

  /** Unicode decimal digits (any script) → ASCII, as Python's int() and float() read them. */
  function asciiDigits(s) {
    return s.replace(/\p{Nd}/gu, (ch) => {
      let start = ch.codePointAt(0);
      while (/\p{Nd}/u.test(String.fromCodePoint(start - 1))) start--; // runs of ten, from a zero
      return String((ch.codePointAt(0) - start) % 10);
    });
  }

  const DIGITS = "\\d(?:_?\\d)*";
  const FLOAT = new RegExp(`^[+-]?(?:(?:${DIGITS})?\\.${DIGITS}|${DIGITS}\\.?)(?:[eE][+-]?${DIGITS})?$`);

  /** Python's float(text), or null where it raises ValueError. */
  function pyFloat(text) {
    const s = asciiDigits(pyStrip(text));
    const special = /^([+-]?)(inf|infinity|nan)$/i.exec(s);
    if (special) return special[2].toLowerCase() === "nan" ? NaN : special[1] === "-" ? -Infinity : Infinity;
    return FLOAT.test(s) ? Number(s.replaceAll("_", "")) : null;
  }

  /** n / d for BigInts, correctly rounded like Python's int / int (Number(BigInt) rounds to nearest). */
  function ratio(n, d) {
    const safe = BigInt(Number.MAX_SAFE_INTEGER);
    if (n <= safe && d <= safe) return Number(n) / Number(d);
    const k = Math.max(0, 66 + d.toString(2).length - n.toString(2).length);
    const scaled = n << BigInt(k);
    const q = (scaled / d) * 2n + (scaled % d === 0n ? 0n : 1n); // a sticky bit below the rounding
    return Number(q) / 2 ** (k + 1);
  }

  const FRACTION = new RegExp(`^[-+]?\\p{Nd}+[${PY_SPACE}]*/[${PY_SPACE}]*\\p{Nd}+%?$`, "u"); // check.py's test
  const FRACTION_PARTS = new RegExp(`^([+-]?)(\\d+)[${PY_SPACE}]*/[${PY_SPACE}]*(\\d+)$`);

  /** float(Fraction(text)) for "3/4", "-3 / 4": null for a zero denominator. */
  function fraction(text) {
    const m = FRACTION_PARTS.exec(asciiDigits(pyStrip(text)));
    if (!m || BigInt(m[3]) === 0n) return null;
    const value = ratio(BigInt(m[2]), BigInt(m[3]));
    return m[1] === "-" ? -value : value;
  }

  // --- encoding (alignlab.quiz.bank) ------------------------------------------------------

  const utf8 = new TextEncoder();

  async function sha256(text) {
    return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", utf8.encode(text)));
  }

  /** Salted SHA-256 of `parts`, first 16 hex characters (bank.digest). */
  async function digest(salt, ...parts) {
    const bytes = await sha256(salt + parts.map((p) => "\x1f" + p).join(""));
    return Array.from(bytes, (b) => hex(b, 2)).join("").slice(0, 16);
  }

  /** Inverse of bank.encode: base64 → XOR with SHA-256(salt␟context␟i) blocks → UTF-8 JSON. */
  async function decode(salt, context, blob) {
    const raw = Uint8Array.from(atob(blob), (c) => c.charCodeAt(0));
    const key = new Uint8Array(raw.length + 32);
    for (let i = 0; i * 32 < raw.length; i++) key.set(await sha256(`${salt}\x1f${context}\x1f${i}`), i * 32);
    const plain = raw.map((b, i) => b ^ key[i]); // (n,)
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(plain));
  }

  // --- checking (alignlab.quiz.check) -----------------------------------------------------

  const optionCode = (salt, qid, key, correct) => digest(salt, qid, "option", key, correct ? "1" : "0");

  async function isCorrect(bank, q, key, code) {
    return code === (await optionCode(bank.salt, q.id, key, true));
  }

  async function feedbackOf(bank, q, i) {
    const blob = q.answers[i].feedback;
    return blob == null ? [] : [await decode(bank.salt, `${q.id}/feedback/${i}`, blob)];
  }

  function optionIndex(q, choice) {
    const texts = q.answers.map((a) => a.answer);
    if (typeof choice === "boolean") throw new QuizError("Choose one of the options (not True/False).");
    if (Number.isInteger(choice) && choice >= 0 && choice < texts.length) return choice;
    if (typeof choice === "string" && texts.includes(choice)) return texts.indexOf(choice);
    throw new QuizError(`${pyRepr(choice)} is not one of this question's options.`);
  }

  async function checkSingle(bank, q, answer) {
    if (answer == null || answer === "") throw new QuizError("Choose an option first.");
    const i = optionIndex(q, answer);
    const option = q.answers[i];
    return { correct: await isCorrect(bank, q, option.answer, option.code), feedback: await feedbackOf(bank, q, i) };
  }

  async function checkMany(bank, q, answer) {
    if (answer == null || !Array.isArray(answer)) answer = answer == null || answer === "" ? [] : [answer];
    const chosen = [...new Set(answer.map((a) => optionIndex(q, a)))].sort((a, b) => a - b);
    if (!chosen.length) throw new QuizError("Select at least one option.");
    const truth = await Promise.all(q.answers.map((a) => isCorrect(bank, q, a.answer, a.code)));
    const correct = truth.every((t, i) => t === chosen.includes(i));
    const feedback = (await Promise.all(chosen.map((i) => feedbackOf(bank, q, i)))).flat();
    const missed = truth.filter((t, i) => t && !chosen.includes(i)).length;
    if (!correct && missed) feedback.push(`${missed} correct option${missed > 1 ? "s" : ""} not selected.`);
    return { correct, feedback };
  }

  /** check.parse_number: "0.73", "7.3e-1", "3/4", "73%" (→ 0.73), " 15 "; commas refused. */
  function parseNumber(text) {
    if (typeof text === "boolean") throw new QuizError("Type a number, not True/False.");
    let value;
    if (typeof text === "number") value = text;
    else {
      const s = pyStrip(text == null ? "None" : String(text)).replaceAll("\u2212", "-");
      if (!s) throw new QuizError("Type a number first.");
      if (s.includes(",")) {
        throw new QuizError(`${pyRepr(text)}: type numbers without commas, with a dot for decimals (e.g. 0.73).`);
      }
      const percent = s.endsWith("%");
      const bare = s.replace(/%+$/, "");
      value = FRACTION.test(s) ? fraction(bare) : pyFloat(bare);
      if (value === null) {
        throw new QuizError(`${pyRepr(text)} is not a number. Type a number such as 0.73 (fractions like 3/4 work too).`);
      }
      value = percent ? value / 100 : value;
    }
    if (!Number.isFinite(value)) throw new QuizError(`${pyRepr(text)} is not a finite number.`);
    return value;
  }

  function matches(rule, x) {
    if ("range" in rule) return rule.range[0] <= x && x <= rule.range[1];
    if ("value" in rule) return Math.abs(x - rule.value) <= (rule.tolerance ?? 0) + 1e-12;
    return rule.type === "default";
  }

  /** check.near_band: 5 tolerances, or 10% of |value| for an exact answer. */
  function nearBand(rule) {
    const tol = rule.tolerance ?? 0;
    return tol > 0 ? 5 * tol : 0.1 * Math.abs(rule.value);
  }

  /** check.near_miss: "Close — within 0.05 of the answer, ..." for a wrong x near a right value. */
  function nearMiss(rules, x) {
    for (const rule of rules) {
      if (!(rule.correct && "value" in rule)) continue;
      const band = nearBand(rule), tol = rule.tolerance ?? 0;
      if (Math.abs(x - rule.value) <= band + 1e-12) {
        const outside = tol > 0 ? `outside its tolerance of ${formatG(tol)}` : "but it must be exact";
        return `Close — within ${formatG(Number(band.toFixed(12)))} of the answer, ${outside}.`;
      }
    }
    return null;
  }

  async function checkNumeric(bank, q, answer) {
    const x = parseNumber(answer);
    const rules = await decode(bank.salt, `${q.id}/numeric`, q.answers);
    const rule = rules.find((r) => matches(r, x)) ?? {};
    const correct = Boolean(rule.correct);
    let feedback = rule.feedback ? [rule.feedback] : [];
    if (!correct && !feedback.length) feedback = [nearMiss(rules, x)].filter(Boolean);
    return { correct, feedback };
  }

  async function checkString(bank, q, answer) {
    if (typeof answer !== "string" || !normalise(answer)) throw new QuizError("Type an answer first.");
    const h = await digest(bank.salt, q.id, "text", normalise(answer));
    const i = q.answers.findIndex((a) => a.answer === h);
    if (i < 0) return { correct: false, feedback: [] };
    return { correct: await isCorrect(bank, q, h, q.answers[i].code), feedback: await feedbackOf(bank, q, i) };
  }

  const CHECKS = { multiple_choice: checkSingle, many_choice: checkMany, numeric: checkNumeric, string: checkString };

  function question(bank, qid) {
    const q = bank.questions.find((q) => q.id === qid);
    if (q) return q;
    const ids = bank.questions.map((q) => q.id).join(", ");
    throw new QuizError(`Chapter ${bank.chapter} has no question ${pyRepr(qid)}. Its questions are: ${ids}.`);
  }

  /** check.check: {correct, feedback} for `answer` to question `qid`; QuizError if unreadable. */
  async function check(bank, qid, answer) {
    const q = question(bank, qid);
    return CHECKS[q.type](bank, q, answer);
  }

  async function reveal(bank, q, key) {
    return q[key] == null ? null : decode(bank.salt, `${q.id}/${key}`, q[key]);
  }

  // --- rendering --------------------------------------------------------------------------

  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;" })[c]);
  }

  /** widgets.markup: escaped, with `code` and **bold**; $…$ stays raw. */
  function markup(text) {
    return escapeHtml(text).replace(/`([^`]+)`/g, "<code>$1</code>").replace(/\*\*([^*]+)\*\*/g, "<b>$1</b>");
  }

  function el(tag, attrs = {}, html = null) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (html !== null) node.innerHTML = html;
    return node;
  }

  let counter = 0;
  const PLACEHOLDER = { numeric: "a number, e.g. 0.73 or 3/4", string: "a word or short phrase" };

  function renderInputs(q, box) {
    const name = `aq-${++counter}`;
    if (q.type === "numeric" || q.type === "string") {
      const label = el("label", { class: "aq-answer" }, "Your answer: ");
      const input = el("input", { type: "text", class: "aq-input", placeholder: PLACEHOLDER[q.type] });
      label.append(input);
      box.append(label);
      return { read: () => input.value, input };
    }
    const kind = q.type === "multiple_choice" ? "radio" : "checkbox";
    const list = el("div", { class: "aq-options", role: kind === "radio" ? "radiogroup" : "group" });
    const inputs = q.answers.map((a, i) => {
      const input = el("input", { type: kind, name, value: String(i) });
      const label = el("label", { class: "aq-option" });
      label.append(input, document.createTextNode(a.answer));
      list.append(label);
      return input;
    });
    box.append(list);
    const texts = (pick) => inputs.filter((i) => i.checked).map((i) => q.answers[+i.value].answer).slice(0, pick);
    return { read: () => (kind === "radio" ? texts(1)[0] ?? null : texts()) };
  }

  async function show(bank, q, answer, out) {
    out.classList.remove("aq-right", "aq-wrong", "aq-error");
    try {
      const verdict = await check(bank, q.id, answer);
      const extra = verdict.feedback.map((f) => `<br>${markup(f)}`).join("");
      if (verdict.correct) {
        const why = await reveal(bank, q, "explanation");
        out.innerHTML = `Right.${extra}` + (why ? `<br>${markup(why)}` : "");
      } else {
        const hint = await reveal(bank, q, "hint");
        out.innerHTML = `Not quite.${extra}` + (hint ? `<br>Hint: ${markup(hint)}` : "");
      }
      out.classList.add(verdict.correct ? "aq-right" : "aq-wrong");
    } catch (e) {
      out.classList.add("aq-error");
      out.textContent = e instanceof QuizError ? e.message
        : `The quiz could not check this answer (${e.name}: ${e.message}). Please report it.`;
    }
  }

  function renderQuestion(bank, q) {
    const box = el("div", { class: "aq-question", "data-id": q.id });
    box.append(el("p", { class: "aq-text" }, markup(q.question)));
    const inputs = renderInputs(q, box);
    const button = el("button", { type: "button", class: "aq-check" });
    button.textContent = "Check";
    const out = el("div", { class: "aq-feedback", role: "status", "aria-live": "polite" });
    button.addEventListener("click", () => show(bank, q, inputs.read(), out));
    inputs.input?.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); button.click(); }
    });
    box.append(button, out);
    return box;
  }

  function render(div, bank) {
    div.replaceChildren(el("h3", { class: "aq-title" }, escapeHtml(`Quiz — chapter ${bank.chapter}: ${bank.title}`)));
    for (const q of bank.questions) div.append(renderQuestion(bank, q));
  }

  async function mount(div) {
    try {
      const response = await fetch(div.dataset.bank);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      render(div, await response.json());
    } catch (e) {
      div.replaceChildren(el("p", { class: "aq-feedback aq-error" }));
      div.firstChild.textContent = `The quiz could not be loaded from ${div.dataset.bank} (${e.message}).`;
    }
  }

  const api = { QuizError, decode, digest, normalise, check, parseNumber, pyRepr, formatG, render, mount };
  if (typeof document !== "undefined") {
    globalThis.AlignLabQuiz = api;
    const start = () => document.querySelectorAll("div.alignlab-quiz").forEach(mount);
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
  }
  if (typeof module !== "undefined") module.exports = api;
})();
