"""Cascade checks on answer text, as the gateway and the offline replay apply them: the judge's
question and verdict, and which checks the replay refuses because outcome data cannot show them."""

from __future__ import annotations

import json

import pytest

from policies.checks import JUDGE_CHARS, Answer, Judge, judge_prompt, judge_says_yes
from policies.evaluate import evaluate
from policies.loaders import load_dataset, load_prices
from policies.schema import PolicyError, parse_policy
from router.cascade import answer_of, conversation, question


@pytest.mark.parametrize(
    "reply, verdict",
    [
        ("YES", True),
        ("yes.", True),
        ("**Yes**, it answers the question.", True),
        ("\n  Yes", True),
        ("NO", False),
        ("No, the total is wrong.", False),
        ("Yesterday's answer holds", False),
        ("The answer is correct. YES", False),  # a verdict that does not come first is not taken
        ("", False),
        ("42", False),
    ],
)
def test_the_judges_verdict_is_the_first_word(reply: str, verdict: bool) -> None:
    assert judge_says_yes(reply) is verdict


def test_the_judge_is_shown_the_conversation_and_the_answer() -> None:
    body = {
        "model": "auto",
        "max_tokens": 500,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is {answer} + 2?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {"role": "assistant", "content": "Which answer?"},
            {"role": "user", "content": "The 40 one."},
        ],
    }
    answer = {"choices": [{"message": {"role": "assistant", "content": "42 {conversation}"}}]}
    sent = question(Judge.model_validate({"type": "judge", "with": ["j"]}), body, answer)
    assert sent["max_tokens"] == 8 and sent["temperature"] == 0 and sent["model"] == "auto"
    text = sent["messages"][0]["content"]
    # braces inside the texts stay text; images are left out
    assert "System: Be brief.\n\nUser: What is {answer} + 2?\n\nAssistant: Which answer?\n\nUser: The 40 one." in text
    assert "Answer:\n42 {conversation}\n" in text and "base64" not in text
    assert text.rstrip().endswith("Reply with one word: YES or NO.")
    own = judge_prompt("Q: {conversation} A: {answer} ok?", "c" * (JUDGE_CHARS + 10), "a" * (JUDGE_CHARS + 10))
    assert own == f"Q: {'c' * JUDGE_CHARS} A: {'a' * JUDGE_CHARS} ok?", "the latest turns, the answer's start"
    assert conversation({"messages": [{"role": "user", "content": None}]}) == ""


def test_every_judge_must_approve() -> None:
    def reply(text: str) -> Answer:
        return answer_of({"choices": [{"message": {"content": text}}]})

    judge = Judge.model_validate({"type": "judge", "with": ["j1", "j2"]})
    answer = Answer("42")
    assert judge.passes(answer, [reply("YES"), reply("yes")], 2, {})
    assert not judge.passes(answer, [reply("YES"), reply("NO")], 2, {})
    assert not judge.passes(answer, [reply("YES")], 2, {}), "a judge that failed to answer is no approval"
    assert not judge.passes(answer, [], 0, {}), "no verdict is no approval"


def test_schema_needs_judges_and_both_placeholders() -> None:
    base = "name: j\nbind: {aliases: [a]}\nobjective: {type: cascade, steps: [x, y], check: %s}\n"
    parse_policy(base % "{type: judge, with: [z]}")
    with pytest.raises(PolicyError, match="names the models that judge"):
        parse_policy(base % "{type: judge}")
    with pytest.raises(PolicyError, match=r"holds \{conversation\} and \{answer\}"):
        parse_policy(base % "{type: judge, with: [z], prompt: 'Is {answer} right?'}")


@pytest.mark.parametrize(
    "check, missing",
    [("{type: judge, with: [b]}", "verdicts of the judge models"), ("{type: logprob}", "token log-probabilities")],
)
def test_the_replay_refuses_checks_the_data_cannot_show(tmp_path, check: str, missing: str) -> None:
    rows = [
        {
            "id": i,
            "prompt": f"q{i}",
            "split": "test",
            "a|score": 1,
            "a|cost_usd": 0.001,
            "b|score": 1,
            "b|cost_usd": 0.01,
        }
        for i in range(4)
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    policy = parse_policy(
        f"name: c\nbind: {{aliases: [x]}}\nobjective: {{type: cascade, steps: [a, b], check: {check}}}\n"
    )
    with pytest.raises(ValueError, match=f"cannot be replayed offline: the data holds no {missing}"):
        ds = load_dataset(data)
        evaluate(policy, ds, split="test", prices=load_prices(None, ds.models))
