"""The stand-in's Responses dialect, read by the OpenAI SDK's own stream parser: a scripted
call to a namespaced tool comes back as that tool in its namespace, and the next turn follows
from the call ids the client sends back."""

from __future__ import annotations

from typing import Any

from openai import OpenAI

from tests.support.llm_standin import LlmStandIn, Text, ToolUse, Turn

TOOLS: list[Any] = [
    {"type": "namespace", "name": "mcp__sandbox", "description": "ours",
     "tools": [{"type": "function", "name": "bash", "parameters": {"type": "object"}}]},
    {"type": "function", "name": "list_mcp_resources", "parameters": {"type": "object"}},
]


def _items(client: OpenAI, inputs: list[Any]) -> tuple[list[Any], Any]:
    stream = client.responses.create(model="gpt-test", input=inputs, tools=TOOLS, stream=True)
    kinds, done, completed = [], [], None
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.output_item.done":
            done.append(event.item)
        elif event.type == "response.completed":
            completed = event.response
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    return done, completed


def test_a_responses_client_plays_the_script() -> None:
    script = [Turn(Text("Running it."), ToolUse("mcp__sandbox__bash", {"command": "true"})),
              Turn(ToolUse("list_mcp_resources", {})),
              Turn(Text("Done."))]
    with LlmStandIn(script, api_key="sk-test") as llm:
        client = OpenAI(base_url=f"{llm.url}/v1", api_key="sk-test", max_retries=0)
        history: list[Any] = [{"role": "user", "content": "go"}]
        (said, call), completed = _items(client, history)
        assert said.type == "message" and said.content[0].text == "Running it."
        assert call.type == "function_call" and call.name == "bash"
        assert call.namespace == "mcp__sandbox"
        assert completed.usage.input_tokens == 10 and completed.usage.output_tokens == 5
        history += [call.model_dump(exclude_none=True),
                    {"type": "function_call_output", "call_id": call.call_id,
                     "output": "exit status: 0"}]
        (second,), _ = _items(client, history)
        assert second.name == "list_mcp_resources" and not getattr(second, "namespace", None)
        history += [second.model_dump(exclude_none=True),
                    {"type": "function_call_output", "call_id": second.call_id,
                     "output": [{"type": "input_text", "text": "{\"resources\":[]}"}]}]
        (final,), _ = _items(client, history)
        assert final.type == "message" and final.content[0].text == "Done."
        last = llm.main_loop()[-1]
    assert last.turns_so_far() == 2
    assert last.tool_results() == ["exit status: 0", "{\"resources\":[]}"]
    assert last.offered_tools() == ["mcp__sandbox__bash", "list_mcp_resources"]
    assert last.headers["authorization"] == "Bearer sk-test"
