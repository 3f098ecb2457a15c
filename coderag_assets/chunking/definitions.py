"""Finding definitions in a syntax tree: names, kinds, nesting, qualified names.

The result feeds both the symbol table (every definition) and the chunker (definitions other than
constants become chunk boundaries).
"""

from __future__ import annotations

from dataclasses import dataclass

from tree_sitter import Language, Node, Query, QueryCursor, Tree

from .grammars import SYMBOL_ONLY_KINDS, Grammar

_QUERIES: dict[str, Query] = {}


@dataclass(frozen=True, slots=True)
class Definition:
    """One definition in a parsed file.

    ``node`` is the definition itself, ``outer`` the outermost wrapper that belongs to it
    (decorators, ``export``, ``template<...>``; ``outer is node`` when unwrapped). Rows are
    0-based: ``start_row`` is where ``outer`` starts, ``end_row`` where ``node`` ends.
    ``name_row``/``name_byte_column`` locate the name.
    """

    node: Node
    outer: Node
    name: str
    qualified_name: str
    parent: str
    kind: str
    start_row: int
    end_row: int
    name_row: int
    name_byte_column: int

    @property
    def is_chunk_unit(self) -> bool:
        """Whether this definition gets a chunk of its own (constants do not)."""
        return self.kind not in SYMBOL_ONLY_KINDS


def end_row(node: Node) -> int:
    """Last row holding text of ``node`` (a node ending at column 0 ends on the row before)."""
    row, column = node.end_point
    if column == 0 and row > node.start_point[0]:
        return row - 1
    return row


def _query_for(grammar: Grammar, language: Language) -> Query:
    query = _QUERIES.get(grammar.language)
    if query is None:
        query = Query(language, grammar.query)
        _QUERIES[grammar.language] = query
    return query


def _outer_node(node: Node, grammar: Grammar) -> Node:
    """Climb through wrapper nodes that belong to this definition."""
    outer = node
    while True:
        parent = outer.parent
        if parent is None:
            return outer
        mode = grammar.wrappers.get(parent.type)
        if mode is None:
            return outer
        count = parent.named_child_count
        if mode == "only" and count != 1:
            return outer
        if mode == "last":
            last = parent.named_child(count - 1)
            if last is None or last.id != outer.id:
                return outer
        outer = parent


def find_definitions(
    tree: Tree, source: bytes, grammar: Grammar, language: Language
) -> list[Definition]:
    """All definitions of ``grammar`` in ``tree``, in source order, with qualified names.

    Nesting follows the syntax tree: a definition's parent scope is the nearest definition whose
    node contains it (constants are never scopes). A qualifier written in the source (Go receiver,
    C++ ``A::f``, Lua ``M.f``) is appended to the parent scope.
    """
    captures = QueryCursor(_query_for(grammar, language)).captures(tree.root_node)
    seen: set[int] = set()
    nodes: list[Node] = []
    for node in captures.get("def", ()):
        if node.id not in seen:
            seen.add(node.id)
            nodes.append(node)
    nodes.sort(key=lambda n: (n.start_byte, -n.end_byte))

    definitions: list[Definition] = []
    scopes: list[Definition] = []  # enclosing definitions of the current node, outermost first
    for node in nodes:
        handler = grammar.handlers.get(node.type)
        match = handler(node, source) if handler is not None else None
        if match is None or not match.name:
            continue
        while scopes and scopes[-1].node.end_byte < node.end_byte:
            scopes.pop()
        enclosing = scopes[-1] if scopes else None
        kind = match.kind
        if (
            kind == "function"
            and enclosing is not None
            and enclosing.kind in grammar.method_parent_kinds
        ):
            kind = "method"
        parent = ".".join(
            part
            for part in (enclosing.qualified_name if enclosing else "", *match.qualifier)
            if part
        )
        qualified_name = f"{parent}.{match.name}" if parent else match.name
        outer = _outer_node(node, grammar)
        definition = Definition(
            node=node,
            outer=outer,
            name=match.name,
            qualified_name=qualified_name,
            parent=parent,
            kind=kind,
            start_row=outer.start_point[0],
            end_row=max(end_row(node), end_row(outer)),
            name_row=match.name_node.start_point[0],
            name_byte_column=match.name_node.start_point[1],
        )
        definitions.append(definition)
        if definition.is_chunk_unit:
            scopes.append(definition)
    return definitions
