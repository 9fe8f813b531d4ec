"""Cascade checks: one class per kind, registered under its config ``type`` (``base`` says what a
check is). A new check is one module here plus its line below."""

from policies.checks.agreement import Agreement, agree_texts, normalise
from policies.checks.base import CHECKS, Answer, CheckKind
from policies.checks.judge import JUDGE_CHARS, JUDGE_PROMPT, Judge, judge_prompt, judge_says_yes
from policies.checks.logprob import Logprob, logprob_ok_values
from policies.checks.rule import Rule, rule_ok_text
from policies.checks.verifier import VerifierCheck

for _kind in (Agreement, Logprob, Rule, VerifierCheck, Judge):
    CHECKS.register(_kind)

__all__ = [
    "CHECKS",
    "JUDGE_CHARS",
    "JUDGE_PROMPT",
    "Agreement",
    "Answer",
    "CheckKind",
    "Judge",
    "Logprob",
    "Rule",
    "VerifierCheck",
    "agree_texts",
    "judge_prompt",
    "judge_says_yes",
    "logprob_ok_values",
    "normalise",
    "rule_ok_text",
]
