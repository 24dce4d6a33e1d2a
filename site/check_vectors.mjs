// Run tests/quiz_vectors.json through site/quiz.js's checker, on the banks the package ships.
//
//   node site/check_vectors.mjs     → one JSON line {"vectors": N, "failed": [...]}; exit 1 on any failure
//
// A vector passes when the JS verdict (correct, and feedback where the vector records it) or the
// error message is exactly what Python's alignlab.quiz.check gave (tests/test_quiz_vectors.py).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const quiz = createRequire(import.meta.url)("./quiz.js");
const vectors = JSON.parse(fs.readFileSync(path.join(root, "tests", "quiz_vectors.json"), "utf8"));
const banks = {};
const bank = (chapter) =>
  (banks[chapter] ??= JSON.parse(fs.readFileSync(path.join(root, "alignlab", "quiz", "banks", `${chapter}.json`), "utf8")));

async function run(v) {
  try {
    const verdict = await quiz.check(bank(v.chapter), v.id, v.answer);
    return { correct: verdict.correct, feedback: verdict.feedback, error: null };
  } catch (e) {
    if (!(e instanceof quiz.QuizError)) return { error: `${e.name}: ${e.message}` };
    return { correct: null, feedback: null, error: e.message };
  }
}

const failed = [];
for (const [i, v] of vectors.entries()) {
  const got = await run(v);
  const ok = v.error !== null ? got.error === v.error
    : got.error === null && got.correct === v.correct
      && (v.feedback === undefined || JSON.stringify(got.feedback) === JSON.stringify(v.feedback));
  if (!ok) failed.push({ index: i, chapter: v.chapter, id: v.id, answer: v.answer, expected: v, got });
}
console.log(JSON.stringify({ vectors: vectors.length, failed }));
process.exit(failed.length ? 1 : 0);
