"""What of a request is scanned: every string, every object key, every number.

The walk is generic on purpose: unknown fields, new content-part types and
vendor extensions are scanned by default (fail closed). Each piece becomes a
:class:`~hybridgate.scan.findings.Segment` of one kind:

* ``value`` - a string the gateway may mask (prompts, tool arguments ...);
* ``verbatim`` - a string the protocol needs unchanged (``id``,
  ``tool_call_id``, ``type``, ``model`` ...): still scanned with every
  detector, but a finding there cannot be masked, so the policy confines
  or refuses the request instead;
* ``key`` - an object key (``metadata`` keys, schema property names,
  ``logit_bias`` keys): scanned, never masked;
* ``number`` - a JSON number as its decimal text: scanned, never masked.

A value under a non-protocol key is scanned with that key before it
(``password: hunter2``), so context words in keys count. Images, audio and
files cannot be scanned as text; their paths are returned separately so the
policy treats the request as unknown.
"""

from __future__ import annotations

from typing import Any

from hybridgate.scan.findings import Segment

#: Keys whose string values are protocol structure, passed on verbatim.
STRUCTURAL_KEYS = frozenset(
    {
        "model", "role", "type", "stream", "tool_call_id", "id", "object", "encoding_format",
        "tool_use_id", "call_id", "finish_reason", "stop_reason", "detail", "format",
        "tool_choice", "reasoning_effort", "service_tier", "response_format", "modalities",
        "voice", "status", "previous_response_id", "truncation",
    }
)  # fmt: skip
#: Keys that carry content or protocol structure, never context for their value.
_NO_CONTEXT_KEYS = STRUCTURAL_KEYS | frozenset(
    {
        "content", "text", "input", "prompt", "arguments", "instructions", "system",
        "messages", "tools", "output", "description", "parameters", "properties", "items",
        "function", "tool_calls", "name", "refusal", "input_text", "output_text", "summary",
        "data", "url", "image_url", "stop", "user", "metadata", "result", "source",
    }
)  # fmt: skip
#: Content-part types carrying binary data the text scanner cannot see into.
UNSCANNABLE_PARTS = frozenset({"image_url", "input_image", "image", "input_audio", "audio", "file"})
#: Fields of an unscannable part holding the payload itself (not scanned as text).
_PAYLOAD_KEYS = frozenset({"data", "file_data", "b64_json"})

Path = tuple[str | int, ...]


def path_str(path: Path) -> str:
    """``("messages", 2, "content", 1)`` -> ``messages[2].content[1]``."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else p
    return out or "$"


def where(seg: Segment) -> str:
    """A segment's location for messages: a key's own text is never shown."""
    if seg.kind == "key":
        return path_str(seg.path[:-1]) + ".{key}" if len(seg.path) > 1 else "{key}"
    return path_str(seg.path)


def _context(path: Path) -> str:
    for p in reversed(path):
        if isinstance(p, str):
            if p in _NO_CONTEXT_KEYS or len(p) > 64:
                return ""
            return p
    return ""


def _number_text(n: int | float) -> str | None:
    try:
        if isinstance(n, int):
            return str(n)
        if n.is_integer() and abs(n) < 1e21:
            return str(int(n))
        return repr(n)
    except (ValueError, OverflowError):  # digits beyond the interpreter's conversion limit
        return None


#: Nesting walked by recursion (fast); deeper subtrees are walked with an explicit stack.
RECURSE_DEPTH = 48


def extract_segments(
    request: Any, *, recurse_depth: int = RECURSE_DEPTH
) -> tuple[list[Segment], list[str]]:
    """Every string, key and number worth scanning with its JSON path, plus unscannable paths.

    Works for Chat Completions and embeddings bodies and, for anything it
    does not recognise, scans everything it contains. Ordinary nesting is
    walked by recursion (a third faster); past ``recurse_depth`` levels the
    walk continues with an explicit stack, so hostile nesting cannot exhaust
    the interpreter stack. Both visit in the same order: an object's keys,
    then each child's subtree in turn.
    """
    segments: list[Segment] = []
    unscannable: list[str] = []
    Walk(segments, unscannable, recurse_depth).node((), request, False, 0)
    return segments, unscannable


class Walk:
    """The walk :func:`extract_segments` makes, node by node.

    Public so the message-grain scan (:mod:`hybridgate.scan.seen`) can walk a
    body's top two levels itself and hand each message to the same code.
    """

    __slots__ = ("limit", "segments", "unscannable")

    def __init__(self, segments: list[Segment], unscannable: list[str], limit: int) -> None:
        self.segments = segments
        self.unscannable = unscannable
        self.limit = limit

    def node(self, path: Path, node: Any, in_binary_part: bool, depth: int) -> None:
        """One node; containers recurse until ``limit``, then go to :meth:`stack`."""
        t = type(node)
        if t is str:
            self.string(path, node, in_binary_part)
        elif t is dict:
            if depth >= self.limit:
                self.stack(path, node, in_binary_part)
                return
            binary = self.dict_binary(path, node, in_binary_part)
            children = self.keys(path, node)
            for key, value in children:
                self.node((*path, key), value, binary, depth + 1)
        elif t is list or t is tuple:
            if depth >= self.limit:
                self.stack(path, node, in_binary_part)
                return
            if self.token_ids(path, node):
                return
            for i, v in enumerate(node):
                self.node((*path, i), v, in_binary_part, depth + 1)
        else:
            self.leaf(path, node)

    def string(self, path: Path, node: str, in_binary_part: bool) -> None:
        if in_binary_part and (node.startswith("data:") or path[-1] in _PAYLOAD_KEYS):
            return
        last = path[-1] if path else None
        if isinstance(last, str) and last in STRUCTURAL_KEYS:
            self.segments.append(Segment(path, node, "verbatim"))
        else:
            self.segments.append(Segment(path, node, "value", _context(path)))

    def dict_binary(self, path: Path, node: dict[Any, Any], in_binary_part: bool) -> bool:
        part_type = node.get("type")
        if isinstance(part_type, str) and part_type in UNSCANNABLE_PARTS:
            self.unscannable.append(path_str(path))
            return True
        return in_binary_part

    def keys(self, path: Path, node: dict[Any, Any]) -> list[tuple[str, Any]]:
        """Every key as a segment (before any child's subtree), and the children to visit."""
        children: list[tuple[str, Any]] = []
        append = self.segments.append
        for key, value in node.items():
            if not isinstance(key, str):
                self.unscannable.append(path_str(path) + ".{key}")
                continue
            append(Segment((*path, key), key, "key"))
            children.append((key, value))
        return children

    def token_ids(self, path: Path, node: list[Any] | tuple[Any, ...]) -> bool:
        if (
            node
            and path
            and path[-1] in ("input", "prompt")
            and all(isinstance(x, int) and not isinstance(x, bool) for x in node)
        ):
            self.unscannable.append(path_str(path))  # token ids: text we cannot read
            return True
        return False

    def leaf(self, path: Path, node: Any) -> None:
        if node is None or isinstance(node, bool):
            return
        if isinstance(node, str):  # a str subclass
            self.string(path, node, False)
        elif isinstance(node, int | float):
            text = _number_text(node)
            if text is None:
                self.unscannable.append(path_str(path))
            else:
                self.segments.append(Segment(path, text, "number", _context(path)))
        else:
            self.unscannable.append(path_str(path))

    def stack(self, path: Path, root: Any, in_binary_part: bool) -> None:
        """The same walk with an explicit stack: any depth, constant interpreter stack."""
        stack: list[tuple[Path, Any, bool]] = [(path, root, in_binary_part)]
        while stack:
            path, node, binary = stack.pop()
            if isinstance(node, str):
                self.string(path, node, binary)
            elif isinstance(node, dict):
                binary = self.dict_binary(path, node, binary)
                children = self.keys(path, node)
                stack.extend(((*path, k), v, binary) for k, v in reversed(children))
            elif isinstance(node, list | tuple):
                if not self.token_ids(path, node):
                    stack.extend(reversed([((*path, i), v, binary) for i, v in enumerate(node)]))
            else:
                self.leaf(path, node)
