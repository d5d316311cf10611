"""Arguments a tool's schema refuses, said in one sentence with what is allowed.

The SDK reports a schema violation as pydantic's text: several lines, the rejected value, and a
link to errors.pydantic.dev, none of which helps a model fix its call. ``ClavisServer`` turns
it into one sentence per wrong argument, naming the argument, what it must be and, where the
schema lists them, the allowed values; the rejected value is never repeated (it is the model's
data, and may be long).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, InputRequiredResult
from mcp.types import Tool as MCPTool
from pydantic import ValidationError

TYPE_WORDS = {"dict": "a JSON object", "string": "a string", "int": "an integer", "bool": "true or false",
              "list": "a JSON array", "float": "a number"}  # fmt: skip
type Unasked = Callable[[Mapping[str, Any], Context[Any, Any]], bool]
"""Whether, for these raw arguments and this request, none of a tool's questions would be asked."""
SERVICE_NAME_RULE = "a service name as list_services shows it (lower-case letters, digits, '.', '_' and '-')"


def problem(error: Any) -> str:
    """One wrong argument in words: ``url must be at least 8 characters long``."""
    field = ".".join(str(part) for part in error.get("loc", ())) or "the arguments"
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    if kind == "missing":
        return f"{field} is required"
    if kind == "string_pattern_mismatch" and field == "service_name":
        return f"service_name must be {SERVICE_NAME_RULE}"
    if kind == "literal_error":
        return f"{field} must be one of {ctx.get('expected', '')}"
    if kind in ("string_too_short", "too_short"):
        return f"{field} must be at least {ctx.get('min_length')} characters long"
    if kind == "too_long" and ctx.get("field_type") == "Dictionary":
        return f"{field} must have at most {ctx.get('max_length')} entries"
    if kind in ("string_too_long", "too_long"):
        return f"{field} must be at most {ctx.get('max_length')} characters long"
    if kind.endswith(("_type", "_parsing")):
        expected = kind.removesuffix("_type").removesuffix("_parsing")
        return f"{field} must be {TYPE_WORDS.get(expected, expected.replace('_', ' '))}"
    return f"{field}: {str(error.get('msg', 'invalid')).rstrip('.')}"


def sentence(tool: str, exc: ValidationError) -> str:
    problems = list(dict.fromkeys(problem(error) for error in exc.errors(include_url=False, include_input=False)))
    return f"Invalid arguments to {tool}: {'; '.join(problems)}. See the tool's input schema."


class ClavisServer[T](MCPServer[T]):
    """MCPServer whose argument errors are one plain sentence.

    Given ``add_tools``, it adds its tools when they are first listed or called rather than when
    it is built: their schemas (and the modules that declare them) cost some 30 ms that the
    answer to ``initialize``, which shows no tool, need not wait for (bench/notes.md)."""

    def __init__(self, *, add_tools: Callable[[ClavisServer[T]], None] | None = None, **settings: Any) -> None:
        super().__init__(**settings)
        self._add_tools = add_tools
        self._unasked: dict[str, tuple[Unasked, Tool]] = {}

    def ask_only_when_needed(self, name: str, unasked: Unasked) -> None:
        """Run tool ``name`` without its questions where ``unasked`` says none would be asked: the
        same tool (validation, body, result) given the answer of a question not asked, without the
        SDK's resolution (its state, plans and the resolver's call: ~60 µs of CPU a call, most calls
        asking nothing)."""
        from .confirm import UNASKED

        tool = self._tool_manager.get_tool(name)
        if tool is None:
            raise KeyError(name)
        answers = dict.fromkeys(tool.resolved_params, UNASKED)
        update = {"fn": functools.partial(tool.fn, **answers), "resolved_params": {}, "resolver_plans": {}}
        self._unasked[name] = (unasked, tool.model_copy(update=update))

    def _tools_added(self) -> None:
        if self._add_tools is not None:
            self._add_tools(self)
            self._add_tools = None

    async def list_tools(self) -> list[MCPTool]:
        self._tools_added()
        return await super().list_tools()

    def _tool_input_schema(self, name: str) -> dict[str, Any] | None:
        """The SDK's lookup of a tool's schema before a call (it bound this method when built)."""
        self._tools_added()
        return super()._tool_input_schema(name)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Any = None
    ) -> CallToolResult | InputRequiredResult:
        self._tools_added()
        try:
            if (skip := self._unasked.get(name)) is not None and context is not None and skip[0](arguments, context):
                return await skip[1].run(arguments, context, convert_result=True)  # type: ignore[no-any-return]
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(sentence(name, exc.__cause__)) from None
            raise
