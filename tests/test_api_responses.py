"""The Responses API (POST /v1/responses, GET/DELETE /v1/responses/{id}) with the official openai
SDK and the OpenAI Agents SDK against the embedded default (simulated providers)."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel

from tests.conftest import Proc, ledger_record
from tests.sdk_shape import assert_sdk_shape

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def client(p: Proc) -> openai.OpenAI:
    return openai.OpenAI(base_url=p.base + "/v1", api_key=p.extra["key"], max_retries=0)


def test_text_answer_parses_as_the_sdks_response_and_is_metered(embedded: Proc) -> None:
    c = client(embedded)
    raw = c.responses.with_raw_response.create(
        model="sim-small",
        input="Name a colour.",
        instructions="Be brief.",
        max_output_tokens=2000,
        metadata={"ticket": "42"},
        user="u-1",
        store=False,
    )
    resp = raw.parse()
    assert_sdk_shape(Response, json.loads(raw.text))
    assert resp.output_text and resp.status == "completed" and resp.model == "sim-small"
    assert resp.output[0].type == "message" and resp.output[0].content[0].type == "output_text"
    assert resp.instructions == "Be brief." and resp.metadata == {"ticket": "42"}
    u = resp.usage
    assert u.input_tokens > 0 and u.output_tokens > 0 and u.total_tokens == u.input_tokens + u.output_tokens
    assert u.input_tokens_details.cached_tokens == 0 and u.output_tokens_details.reasoning_tokens == 0
    # the ledger holds it under its surface, at the price the header showed
    rid = raw.headers["x-request-id"]
    row = ledger_record(embedded, embedded.extra["key"], rid)
    assert row["endpoint"] == "responses" and row["model"] == "sim-small"
    assert row["prompt_tokens"] == u.input_tokens and row["completion_tokens"] == u.output_tokens
    assert row["charge_usd"] == pytest.approx(float(raw.headers["x-switchyard-charge-usd"]), rel=1e-6)


def test_a_length_cut_answer_is_incomplete(embedded: Proc) -> None:
    resp = client(embedded).responses.create(
        model="sim-small", input="Write an essay.", max_output_tokens=3, store=False
    )
    assert resp.status == "incomplete" and resp.incomplete_details.reason == "max_output_tokens"
    assert resp.usage.output_tokens == 3


EXPECTED_TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def _collapse(kinds: list[str]) -> list[str]:
    out: list[str] = []
    for k in kinds:
        if not out or out[-1] != k or not k.endswith(".delta"):
            out.append(k)
    return out


def test_stream_follows_the_documented_event_sequence(embedded: Proc) -> None:
    events = list(
        client(embedded).responses.create(
            model="sim-small", input="Say hello.", stream=True, max_output_tokens=2000, store=False
        )
    )
    kinds = [e.type for e in events]
    assert _collapse(kinds) == EXPECTED_TEXT_EVENTS, kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    for e in events:
        assert_sdk_shape(ResponseStreamEvent, e.model_dump(mode="json", exclude_unset=True))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = events[-1].response
    assert deltas and done.output_text == deltas and done.usage.output_tokens > 0
    assert next(e for e in events if e.type == "response.output_text.done").text == deltas


def test_stream_helper_builds_the_final_response(embedded: Proc) -> None:
    with client(embedded).responses.stream(
        model="sim-small", input="Say hello.", max_output_tokens=2000, store=False
    ) as s:
        texts = [e.delta for e in s if e.type == "response.output_text.delta"]
        final = s.get_final_response()
    assert final.output_text == "".join(texts) and final.status == "completed"


def test_a_stream_cut_by_max_output_tokens_ends_incomplete(embedded: Proc) -> None:
    events = list(
        client(embedded).responses.create(
            model="sim-small", input="Write an essay.", stream=True, max_output_tokens=3, store=False
        )
    )
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"


def test_function_tool_round_trip(embedded: Proc) -> None:
    c = client(embedded)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    first = c.responses.create(model="sim-small", input=ask, tools=[WEATHER], tool_choice="required", store=False)
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and "city" in json.loads(calls[0].arguments)
    # the call and its output go back as items; the model answers in text
    follow = ask + [
        calls[0].model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"temp_c": 21}'},
    ]
    second = c.responses.create(model="sim-small", input=follow, tools=[WEATHER], store=False)
    assert second.output_text and not [o for o in second.output if o.type == "function_call"]
    # streamed: the arguments arrive in deltas and whole in the done event and the final item
    events = list(
        c.responses.create(
            model="sim-small", input=ask, tools=[WEATHER], tool_choice="required", stream=True, store=False
        )
    )
    kinds = _collapse([e.type for e in events])
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ], kinds
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == json.loads(events[-1].response.output[0].arguments)
    assert events[-1].response.output[0].call_id.startswith("call_")


class City(BaseModel):
    name: str
    population: int


class Trip(BaseModel):
    title: str
    start: City
    stops: list[City]


def test_parse_a_nested_pydantic_model(embedded: Proc) -> None:
    resp = client(embedded).responses.parse(model="sim-small", input="Plan a trip.", text_format=Trip, store=False)
    trip = resp.output_parsed
    assert isinstance(trip, Trip) and isinstance(trip.start, City) and all(isinstance(s, City) for s in trip.stops)


def test_stored_responses_continue_retrieve_and_delete(embedded: Proc) -> None:
    c = client(embedded)
    first = c.responses.create(model="sim-small", input="My name is Ada. Remember it.", max_output_tokens=20)
    fresh = c.responses.create(model="sim-small", input="What is my name?", max_output_tokens=5, store=False)
    cont = c.responses.create(
        model="sim-small", input="What is my name?", max_output_tokens=5, previous_response_id=first.id
    )
    assert cont.previous_response_id == first.id
    # the continuation sent the stored conversation: its prompt holds the first turn and its answer
    assert (
        cont.usage.input_tokens >= fresh.usage.input_tokens + first.usage.input_tokens - 3 + first.usage.output_tokens
    )
    got = c.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == first.output_text and got.usage == first.usage
    assert c.responses.delete(first.id) is None
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError) as err:
        c.responses.create(model="sim-small", input="again", previous_response_id=first.id)
    assert err.value.body["code"] == "previous_response_not_found"
    # a streamed answer is stored once complete; a tool call continues with only its output
    events = list(
        c.responses.create(
            model="sim-small", input="Weather in Paris?", tools=[WEATHER], tool_choice="required", stream=True
        )
    )
    done = events[-1].response
    call = done.output[0]
    follow = c.responses.create(
        model="sim-small",
        previous_response_id=done.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "21C"}],
    )
    assert follow.output_text


@pytest.mark.parametrize(
    "body,status,param",
    [
        ({"model": "sim-small"}, 400, "input"),
        ({"model": "sim-small", "input": []}, 400, "input"),
        ({"model": "sim-small", "input": "hi", "tools": [{"type": "web_search"}]}, 400, "tools[0].type"),
        ({"model": "sim-small", "input": [{"type": "item_reference", "id": "x"}]}, 400, "input[0].type"),
        ({"model": "sim-small", "input": [{"role": "robot", "content": "x"}]}, 400, "input[0].role"),
        ({"model": "sim-small", "input": "hi", "text": {"format": {"type": "json_schema"}}}, 400, "text.format.name"),
        ({"model": "sim-small", "input": "hi", "max_output_tokens": 0}, 400, "max_output_tokens"),
        ({"model": "sim-small", "input": "hi", "background": True}, 400, "background"),
        ({"model": "no-such-model", "input": "hi"}, 404, "model"),
        ({"model": "sim-small", "input": "hi", "previous_response_id": "resp_nope"}, 404, "previous_response_id"),
    ],
)
def test_bad_input_gets_an_openai_error(embedded: Proc, body: dict, status: int, param: str) -> None:
    r = httpx.post(
        embedded.base + "/v1/responses", json=body, headers={"authorization": f"Bearer {embedded.extra['key']}"}
    )
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["message"] and set(err) == {"message", "type", "param", "code"}


def test_agents_sdk_runs_an_agent_with_a_function_tool(embedded: Proc) -> None:
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    seen: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        seen.append(city)
        return f"21C and sunny in {city}"

    model = OpenAIResponsesModel(
        model="sim-small",
        openai_client=openai.AsyncOpenAI(base_url=embedded.base + "/v1", api_key=embedded.extra["key"], max_retries=0),
    )
    agent = Agent(name="forecaster", instructions="Use the tool, then answer.", tools=[get_weather], model=model)
    result = asyncio.run(Runner.run(agent, "Weather in Paris?"))
    assert seen, "the agent never called its tool"
    assert isinstance(result.final_output, str) and result.final_output
