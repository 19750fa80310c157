"""Multilingual regression set for the semantic tier: near-miss pairs that must never be served
from each other's cache entry, and true paraphrases that may be.

Each row is (language, kind, stored prompt, new prompt). ``kind`` is what differs: "entity",
"number", "direction", "negation" (all must miss) or "paraphrase" (may hit). Written for this
project; the English rows are the control that the tier still serves what it was built for.
"""

from __future__ import annotations

MUST_MISS = ("entity", "number", "direction", "negation")

PAIRS: list[tuple[str, str, str, str]] = [
    # Russian
    ("ru", "entity", "Что такое кошка?", "Что такое собака?"),
    ("ru", "number", "Сколько будет 12 умножить на 7?", "Сколько будет 13 умножить на 7?"),
    ("ru", "direction", "Переведи с русского на английский: добрый день",
     "Переведи с английского на русский: добрый день"),
    ("ru", "negation", "Почему кофе полезен для здоровья?", "Почему кофе не полезен для здоровья?"),
    ("ru", "paraphrase", "Какая столица Франции?", "Какой город является столицей Франции?"),
    ("ru", "paraphrase", "Как приготовить борщ?", "Как сварить борщ?"),
    # Japanese
    ("ja", "entity", "東京の人口は何人ですか？", "大阪の人口は何人ですか？"),
    ("ja", "entity", "東京の人口は何人ですか？", "大阪の天気はどうですか？"),
    ("ja", "number", "3月5日の天気を教えて", "3月6日の天気を教えて"),
    ("ja", "direction", "フランス語から日本語に翻訳してください：こんにちは",
     "日本語からフランス語に翻訳してください：こんにちは"),
    ("ja", "negation", "この薬は子供に安全ですか？", "この薬は子供に安全ではないですか？"),
    ("ja", "paraphrase", "日本の首都はどこですか？", "日本の首都はどこ？"),
    # Chinese
    ("zh", "entity", "北京的人口是多少？", "上海的人口是多少？"),
    ("zh", "number", "100美元等于多少人民币？", "200美元等于多少人民币？"),
    ("zh", "direction", "把这句话从中文翻译成英文：你好", "把这句话从英文翻译成中文：你好"),
    ("zh", "negation", "为什么猫喜欢喝牛奶？", "为什么猫不喜欢喝牛奶？"),
    ("zh", "paraphrase", "中国的首都是哪里？", "中国的首都是哪个城市？"),
    # Arabic (also Arabic-Indic digits)
    ("ar", "entity", "ما هي عاصمة فرنسا؟", "ما هي عاصمة ألمانيا؟"),
    ("ar", "number", "كم يساوي 15 ضرب 4؟", "كم يساوي 16 ضرب 4؟"),
    ("ar", "number", "كم يساوي ١٥ ضرب ٤؟", "كم يساوي ١٦ ضرب ٤؟"),
    ("ar", "direction", "ترجم من العربية إلى الإنجليزية: صباح الخير",
     "ترجم من الإنجليزية إلى العربية: صباح الخير"),
    ("ar", "negation", "هل القهوة مفيدة للصحة؟", "هل القهوة ليست مفيدة للصحة؟"),
    ("ar", "paraphrase", "ما هي عاصمة فرنسا؟", "ما عاصمة فرنسا؟"),
    # Hindi
    ("hi", "entity", "भारत की राजधानी क्या है?", "नेपाल की राजधानी क्या है?"),
    ("hi", "number", "5 किलो चावल की कीमत क्या है?", "10 किलो चावल की कीमत क्या है?"),
    ("hi", "direction", "हिंदी से अंग्रेज़ी में अनुवाद करें: नमस्ते",
     "अंग्रेज़ी से हिंदी में अनुवाद करें: नमस्ते"),
    ("hi", "negation", "क्या चाय सेहत के लिए अच्छी है?", "क्या चाय सेहत के लिए अच्छी नहीं है?"),
    ("hi", "paraphrase", "भारत की राजधानी क्या है?", "भारत की राजधानी कौन सी है?"),
    # Korean
    ("ko", "entity", "서울의 인구는 얼마입니까?", "부산의 인구는 얼마입니까?"),
    ("ko", "number", "3 더하기 4는 얼마입니까?", "3 더하기 5는 얼마입니까?"),
    ("ko", "direction", "한국어를 영어로 번역해 주세요: 안녕하세요",
     "영어를 한국어로 번역해 주세요: 안녕하세요"),
    ("ko", "negation", "커피는 건강에 좋습니까?", "커피는 건강에 좋지 않습니까?"),
    ("ko", "paraphrase", "한국의 수도는 어디입니까?", "한국의 수도는 어디예요?"),
    # Greek
    ("el", "entity", "Ποια είναι η πρωτεύουσα της Ελλάδας;", "Ποια είναι η πρωτεύουσα της Ιταλίας;"),
    ("el", "number", "Πόσο κάνει 7 επί 8;", "Πόσο κάνει 7 επί 9;"),
    ("el", "direction", "Μετάφρασε από τα ελληνικά στα αγγλικά: καλημέρα",
     "Μετάφρασε από τα αγγλικά στα ελληνικά: καλημέρα"),
    ("el", "negation", "Είναι ο καφές υγιεινός;", "Δεν είναι ο καφές υγιεινός;"),
    ("el", "paraphrase", "Ποια είναι η πρωτεύουσα της Ελλάδας;",
     "Ποια πόλη είναι η πρωτεύουσα της Ελλάδας;"),
    # Hebrew
    ("he", "entity", "מהי בירת צרפת?", "מהי בירת גרמניה?"),
    ("he", "number", "כמה זה 6 כפול 7?", "כמה זה 6 כפול 8?"),
    ("he", "direction", "תרגם מעברית לאנגלית: בוקר טוב", "תרגם מאנגלית לעברית: בוקר טוב"),
    ("he", "negation", "האם קפה בריא?", "האם קפה לא בריא?"),
    ("he", "paraphrase", "מהי בירת צרפת?", "מה עיר הבירה של צרפת?"),
    # German, with umlauts and ß
    ("de", "entity", "Wie viele Einwohner hat Zürich?", "Wie viele Einwohner hat München?"),
    ("de", "entity", "Wie ist das Wetter in Köln?", "Wie ist das Wetter in Kiel?"),
    ("de", "number", "Was kostet ein Ticket für 3 Personen?", "Was kostet ein Ticket für 4 Personen?"),
    ("de", "direction", "Übersetze vom Deutschen ins Französische: Guten Morgen",
     "Übersetze vom Französischen ins Deutsche: Guten Morgen"),
    ("de", "negation", "Ist Kaffee gesund?", "Ist Kaffee nicht gesund?"),
    ("de", "paraphrase", "Was ist die Hauptstadt von Österreich?",
     "Wie heißt die Hauptstadt von Österreich?"),
    ("de", "paraphrase", "Wie groß ist die Straße?", "Wie gross ist die Strasse?"),
    # Mixed scripts
    ("mixed", "direction", "Translate from French to Japanese: こんにちは",
     "Translate from Japanese to French: こんにちは"),
    ("mixed", "direction", "French → Japanese: bonjour", "Japanese → French: bonjour"),
    ("mixed", "entity", "What does 猫 mean in English?", "What does 犬 mean in English?"),
    ("mixed", "entity", "Explain the word «кошка» in English", "Explain the word «собака» in English"),
    ("mixed", "number", "What is ٣ plus 4?", "What is ٥ plus 4?"),
    ("mixed", "paraphrase", "What does 猫 mean in English?", "What is the meaning of 猫 in English?"),
    # English controls: the tier still serves paraphrases and still refuses near misses.
    ("en", "entity", "What is the capital of France?", "What is the capital of Germany?"),
    ("en", "direction", "How do I convert Celsius to Fahrenheit?",
     "How do I convert Fahrenheit to Celsius?"),
    ("en", "paraphrase", "What is the capital of France?", "What's the capital city of France?"),
    ("en", "paraphrase", "How do I reset my password on the customer portal?",
     "How can I reset my password on the customer portal?"),
    ("en", "paraphrase", "What are the opening hours of the Louvre museum?",
     "What are the opening hours for the Louvre museum?"),
]
