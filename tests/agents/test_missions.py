"""Mission files: valid ones load and build their tools; mistakes name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.missions import MissionError, load_mission, parse_mission
from agents.prompts import DecisionError, parse_decision
from schemas.models import Answer, Ask, Think, UseTool

VALID = """
name: research-france
objective: Find the capital of France
agent_config:
  max_iterations: 5
  model: qwen2.5
  temperature: 0.2
tools:
  - name: calculator
  - name: file_read
    config: {base_path: data}
success_criteria:
  - answer names Paris
group_id: france-v1
rollouts: 4
"""


def test_valid_mission_loads_and_builds_tools(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    path = tmp_path / "mission.yaml"
    path.write_text(VALID)
    mission = load_mission(path)
    assert (mission.name, mission.group_id, mission.rollouts) == ("research-france", "france-v1", 4)
    assert mission.agent_config.max_iterations == 5 and mission.agent_config.reflection_interval == 3
    assert mission.base_dir == tmp_path.resolve()
    assert mission.toolbox().names() == ["calculator", "file_read"]


def test_defaults() -> None:
    mission = parse_mission("name: m\nobjective: do it\n")
    assert mission.agent_config.max_iterations == 10 and mission.tools == [] and mission.rollouts == 1


@pytest.mark.parametrize(("text", "message"), [
    (VALID.replace("max_iterations: 5", "max_iterations: many"),
     "mission.yaml: agent_config.max_iterations: Input should be a valid integer"),
    (VALID.replace("max_iterations: 5", "max_iterations: 0"),
     "mission.yaml: agent_config.max_iterations: Input should be greater than or equal to 1"),
    (VALID.replace("max_iterations: 5", "max_iteration: 5"),
     "mission.yaml: agent_config.max_iteration: Extra inputs are not permitted"),
    (VALID.replace("temperature: 0.2", "temperature: 9"),
     "mission.yaml: agent_config.temperature: Input should be less than or equal to 2"),
    (VALID.replace("objective: Find the capital of France\n", ""), "mission.yaml: objective: Field required"),
    (VALID.replace("rollouts: 4", "rollouts: -1"), "mission.yaml: rollouts: Input should be greater than or equal"),
    (VALID.replace("- answer names Paris", "- {a: 1}"), "mission.yaml: success_criteria.0: Input should be a valid"),
    (VALID.replace("name: calculator", "name: shell"),
     "mission.yaml: tools.0.name: unknown tool 'shell'; known tools:"),
    (VALID.replace("base_path: data", "base: data"),
     "mission.yaml: tools.1.config.base: Extra inputs are not permitted"),
    (VALID.replace("name: calculator", "name: file_read"),
     "mission.yaml: tools.1.name: tool 'file_read' is listed twice"),
    (VALID + "tools_extra: 1\n", "mission.yaml: tools_extra: Extra inputs are not permitted"),
    ("name: [unclosed", "mission.yaml: not valid YAML"),
    ("- just\n- a list\n", "mission.yaml: a mission is a mapping"),
    ("", "mission.yaml: a mission is a mapping"),
    ("name: bad name!\nobjective: x", "mission.yaml: name: String should match pattern"),
])
def test_mistakes_name_the_field(text: str, message: str) -> None:
    with pytest.raises(MissionError) as info:
        parse_mission(text, "mission.yaml")
    assert str(info.value).startswith(message), str(info.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(MissionError, match=r"missing.yaml: mission file does not exist"):
        load_mission(tmp_path / "missing.yaml")
    bad = tmp_path / "m.yaml"
    bad.write_text("name: m\nobjective: x\nagent_config: {max_iterations: abc}\n")
    with pytest.raises(MissionError) as info:
        load_mission(bad)
    assert str(info.value) == (f"{bad}: agent_config.max_iterations: Input should be a valid integer, "
                               "unable to parse string as an integer")


# --- decisions: what the model says back ----------------------------------------------------


@pytest.mark.parametrize(("text", "action"), [
    ('{"action": "use_tool", "tool": "calculator", "input": "2+2", "thought": "t"}',
     UseTool(tool="calculator", input="2+2")),
    ('Here you go:\n```json\n{"action": "USE_TOOL", "tool_name": "lookup", "action_input": "paris"}\n```',
     UseTool(tool="lookup", input="paris")),
    ('{"action": "use_tool", "tool": "file_write", "input": {"path": "a", "content": "b"}}',
     UseTool(tool="file_write", input='{"content": "b", "path": "a"}')),
    ('{"action": "use_tool", "tool": "calculator", "input": 42}', UseTool(tool="calculator", input="42")),
    ('{"Action": "final_answer", "answer": "Paris"}', Answer(text="Paris")),
    ('{"action": "Final Answer", "input": "Paris"} trailing words', Answer(text="Paris")),
    ('{not json} then {"action": "ask", "question": "Which year?"}', Ask(question="Which year?")),
    ('{"action": "think"}', Think(note="")),
    ('[{"action": "answer", "input": "in a list"}]', Answer(text="in a list")),
])
def test_decisions_parse_robustly(text: str, action: object) -> None:
    assert parse_decision(text).to_action() == action


@pytest.mark.parametrize(("text", "message"), [
    ("I will answer Paris.", "no JSON object in the decision"),
    ('{"tool": "calculator"}', 'decision has no "action" string'),
    ('{"action": "use_tool", "input": "2+2"}', "use_tool decision names no tool"),
    ('{"action": "fly"}', "unknown action 'fly'"),
    ('{"action": "answer"}', 'answer decision has an empty "input"'),
    ('{"action": "ask", "input": "  "}', 'ask decision has an empty "input"'),
])
def test_bad_decisions(text: str, message: str) -> None:
    with pytest.raises(DecisionError) as info:
        parse_decision(text)
    assert message in str(info.value)
