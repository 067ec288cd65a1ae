#!/usr/bin/env python3
"""Expected outputs of openai-whisper's EnglishTextNormalizer (20250625) for the normaliser tests.

  python make_cases.py > cases.json     (needs openai-whisper; scripts/benchmark.sh's venv has it)
"""
import json
from whisper.normalizers import EnglishTextNormalizer

inputs = [
    "two", "thirty one", "five twenty four", "nineteen ninety nine", "twenty nineteen", "one hundred",
    "one thousand", "two million", "three billion dollars", "double oh seven", "triple five", "one oh one",
    "one point five", "point five", "$1.5", "$20 million", "three hundred and twenty one", "twenty one thousand",
    "2nd", "twenty first", "the fifth", "the nineties", "the 1960s", "fifty percent", "fifty per cent",
    "ten dollars", "twenty five cents", "two dollars and seven cents", "£3 and ¢50", "two and a half",
    "one and a half million", "it's", "won't you", "can't", "they're gonna", "I'd been there", "he's got it",
    "Mr. Smith", "Dr Jones", "St. Louis", "colour", "organise the centre", "hmm, [laughs] (noise) okay",
    "um uh mhm yes", "naïve café", "œuvre", "1,000", "1,234,567", "minus five", "plus two", "1960s",
    "ones", "one", "sixes and sevens", "first second third", "twelfth night", "zero zero seven",
    "version 2.0.1", "192.168.1.1", "3.14", "a 100% sure", "I have 2 cats", "at 5pm", "the 21st century",
    "seventy-six trombones", "sixty four thousand dollar question", "ninety nine problems",
    "And so my fellow Americans, ask not what your country can do for you",
    "HE HOPED THERE WOULD BE STEW FOR DINNER TURNIPS AND CARROTS",
]
n = EnglishTextNormalizer()
print(json.dumps([{"input": s, "output": n(s)} for s in inputs], ensure_ascii=False, indent=1))
