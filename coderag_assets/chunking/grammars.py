"""Per-language node tables: which syntax nodes are definitions, what they are called, what kind.

Each supported language has a :class:`Grammar`:

- ``query``: a tree-sitter query whose ``@def`` captures are the candidate definition nodes. The
  query runs in C over the whole tree, so nested definitions anywhere (inside ``if`` blocks,
  callbacks, namespaces) are found without walking every node in Python. Structural patterns
  (e.g. "an assignment directly under the module") keep candidate counts small.
- ``handlers``: node type -> function that names the candidate and says what kind it is, or
  rejects it (``None``).
- ``wrappers``: node types that wrap a definition and belong to its chunk (Python decorators,
  ``export``, C++ ``template<...>``). ``"last"``: the definition is the wrapper's last named child;
  ``"only"``: its only named child.
- ``prefix_types``: sibling nodes (comments, Rust attributes) that attach to the definition right
  below them when no blank line separates them.

Kinds used: function, method, class, struct, interface, trait, enum, impl (Rust ``impl``, Swift
``extension``), module (modules, namespaces, packages with a body), object (Kotlin/Scala
``object``), type (type aliases, typedefs, Go named types), macro, constant. A "function" whose
enclosing definition is class-like becomes a "method" (see ``method_parent_kinds``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tree_sitter import Node

#: Kinds that are symbols only; they never become a chunk of their own.
SYMBOL_ONLY_KINDS: frozenset[str] = frozenset({"constant"})

#: Enclosing kinds that turn a nested "function" into a "method".
CLASS_LIKE_KINDS: frozenset[str] = frozenset(
    {"class", "struct", "interface", "trait", "enum", "impl", "object"}
)

_UPPER_CASE = re.compile(r"^_*[A-Z][A-Z0-9_]*$")
_GENERIC_ARGS = re.compile(r"<[^<>]*>|\[[^\[\]]*\]")
_SCOPE_SEPARATORS = re.compile(r"::|\.|\\")


@dataclass(frozen=True, slots=True)
class DefMatch:
    """A recognised definition: its name, the node holding the name, its kind, and an explicit
    scope written in the source (Go receiver ``(c *Circle)``, C++ ``Polygon::name``, Lua
    ``Account.new``) that qualifies the name in addition to the enclosing definitions."""

    name: str
    name_node: Node
    kind: str
    qualifier: tuple[str, ...] = ()


Handler = Callable[[Node, bytes], DefMatch | None]


@dataclass(frozen=True, slots=True)
class Grammar:
    """The node table of one language (see the module docstring)."""

    language: str
    query: str
    handlers: Mapping[str, Handler]
    wrappers: Mapping[str, str] = field(default_factory=dict)
    prefix_types: frozenset[str] = frozenset({"comment"})
    method_parent_kinds: frozenset[str] = CLASS_LIKE_KINDS


# --------------------------------------------------------------------------- helpers


def node_text(node: Node, source: bytes) -> str:
    """The source text of ``node`` (invalid UTF-8 replaced)."""
    return source[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _strip_generics(text: str) -> str:
    """``Box<T>::value`` -> ``Box::value``; ``Stack[K, V]`` -> ``Stack`` (nested args too)."""
    previous = None
    while previous != text:
        previous = text
        text = _GENERIC_ARGS.sub("", text)
    return text


_NAME_PART_FIELDS = ("name", "field", "method", "property")


def _last_name_part(node: Node) -> Node:
    """The node of the last component of a scoped path (``f`` in ``A::B::f``, ``new`` in
    ``Account.new``), so symbol columns point at the name itself."""
    for _ in range(16):
        part = next(
            (c for c in map(node.child_by_field_name, _NAME_PART_FIELDS) if c is not None), None
        )
        if part is None:
            return node
        node = part
    return node


def _split_scoped(
    name_node: Node, source: bytes, kind: str, separators: re.Pattern[str]
) -> DefMatch:
    """Name a definition whose name node may be a scoped path (``A::B::f``, ``A.B``)."""
    text = _strip_generics(node_text(name_node, source)).strip()
    parts = [part for part in separators.split(text) if part]
    if not parts:
        return DefMatch(text, name_node, kind)
    return DefMatch(parts[-1], _last_name_part(name_node), kind, tuple(parts[:-1]))


def _by_field(kind: str, field_name: str = "name") -> Handler:
    """Handler for nodes whose name sits in one field (the common case)."""

    def handle(node: Node, source: bytes) -> DefMatch | None:
        name_node = node.child_by_field_name(field_name)
        if name_node is None:
            return None
        return DefMatch(node_text(name_node, source), name_node, kind)

    return handle


def _scoped_field(kind: str, field_name: str = "name") -> Handler:
    """Handler for names that may be scoped paths (Ruby ``Foo::Bar``, TS ``namespace A.B``)."""

    def handle(node: Node, source: bytes) -> DefMatch | None:
        name_node = node.child_by_field_name(field_name)
        if name_node is None:
            return None
        return _split_scoped(name_node, source, kind, _SCOPE_SEPARATORS)

    return handle


def _first_child(kind: str, *child_types: str) -> Handler:
    """Handler for grammars without name fields (Kotlin): the first child of a given type."""

    def handle(node: Node, source: bytes) -> DefMatch | None:
        for child in node.named_children:
            if child.type in child_types:
                return DefMatch(node_text(child, source), child, kind)
        return None

    return handle


def _upper_case_only(handler: Handler) -> Handler:
    """Keep only matches whose name is UPPER_CASE (the conventional constant spelling)."""

    def handle(node: Node, source: bytes) -> DefMatch | None:
        match = handler(node, source)
        if match is None or not _UPPER_CASE.match(match.name):
            return None
        return match

    return handle


# --------------------------------------------------------------------------- python


def _python_type_alias(node: Node, source: bytes) -> DefMatch | None:
    left = node.child_by_field_name("left")
    if left is None:
        return None
    name_node = left.named_children[0] if left.named_child_count else left
    return DefMatch(node_text(name_node, source), name_node, "type")


def _python_constant(node: Node, source: bytes) -> DefMatch | None:
    """Module-level ``UPPER_CASE = ...`` (the grammar puts assignments directly under the module)."""
    left = node.child_by_field_name("left")
    if left is None or left.type != "identifier":
        return None
    name = node_text(left, source)
    if not _UPPER_CASE.match(name):
        return None
    return DefMatch(name, left, "constant")


_PYTHON = Grammar(
    language="python",
    query="""
    (function_definition) @def
    (class_definition) @def
    (type_alias_statement) @def
    (module (assignment left: (identifier)) @def)
    """,
    handlers={
        "function_definition": _by_field("function"),
        "class_definition": _by_field("class"),
        "type_alias_statement": _python_type_alias,
        "assignment": _python_constant,
    },
    wrappers={"decorated_definition": "last"},
)


# --------------------------------------------------------------------------- javascript / typescript

_JS_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function"}
)
_JS_CLASS_VALUES = frozenset({"class"})
_JS_DROPPED_OBJECTS = frozenset({"module", "exports", "this", "prototype", "window", "self"})


def _js_variable(node: Node, source: bytes) -> DefMatch | None:
    """``const f = () => ...`` (function), ``const C = class {}`` (class), top-level
    ``const UPPER = ...`` (constant)."""
    name_node = node.child_by_field_name("name")
    if name_node is None or name_node.type != "identifier":
        return None
    value = node.child_by_field_name("value")
    name = node_text(name_node, source)
    if value is not None and value.type in _JS_FUNCTION_VALUES:
        return DefMatch(name, name_node, "function")
    if value is not None and value.type in _JS_CLASS_VALUES:
        return DefMatch(name, name_node, "class")
    declaration = node.parent
    if (
        declaration is not None
        and declaration.type == "lexical_declaration"
        and node_text(declaration, source).startswith("const")
        and _UPPER_CASE.match(name)
    ):
        return DefMatch(name, name_node, "constant")
    return None


def _js_field(node: Node, source: bytes) -> DefMatch | None:
    """Class fields holding functions: ``handle = () => {...}``."""
    name_node = node.child_by_field_name("property") or node.child_by_field_name("name")
    value = node.child_by_field_name("value")
    if name_node is None or value is None or value.type not in _JS_FUNCTION_VALUES:
        return None
    return DefMatch(node_text(name_node, source), name_node, "method")


def _js_assignment(node: Node, source: bytes) -> DefMatch | None:
    """``Foo.prototype.bar = function`` -> ``Foo.bar``; ``exports.baz = () =>`` -> ``baz``."""
    assignment = node.named_children[0] if node.named_child_count else None
    if assignment is None or assignment.type != "assignment_expression":
        return None
    left = assignment.child_by_field_name("left")
    right = assignment.child_by_field_name("right")
    if left is None or right is None or right.type not in _JS_FUNCTION_VALUES:
        return None
    name_node = left.child_by_field_name("property")
    if left.type != "member_expression" or name_node is None:
        return None
    objects = node_text(left.child_by_field_name("object") or left, source).split(".")
    qualifier = tuple(
        part for part in objects if part and part not in _JS_DROPPED_OBJECTS and part.isidentifier()
    )
    return DefMatch(node_text(name_node, source), name_node, "function", qualifier)


def _js_method(node: Node, source: bytes) -> DefMatch | None:
    name_node = node.child_by_field_name("name")
    if name_node is None:
        return None
    return DefMatch(node_text(name_node, source), name_node, "function")


_JS_QUERY = """
(function_declaration) @def
(generator_function_declaration) @def
(class_declaration) @def
(method_definition) @def
(variable_declarator value: [(arrow_function) (function_expression) (generator_function) (class)]) @def
(program (lexical_declaration (variable_declarator name: (identifier)) @def))
(program (export_statement (lexical_declaration (variable_declarator name: (identifier)) @def)))
(program (expression_statement (assignment_expression
    left: (member_expression)
    right: [(arrow_function) (function_expression) (generator_function)])) @def)
"""

_JS_HANDLERS: dict[str, Handler] = {
    "function_declaration": _by_field("function"),
    "generator_function_declaration": _by_field("function"),
    "class_declaration": _by_field("class"),
    "method_definition": _js_method,
    "variable_declarator": _js_variable,
    "expression_statement": _js_assignment,
}


_JAVASCRIPT = Grammar(
    language="javascript",
    query=_JS_QUERY + "\n(field_definition value: [(arrow_function) (function_expression)]) @def",
    handlers={**_JS_HANDLERS, "field_definition": _js_field},
    wrappers={
        "export_statement": "last",
        "lexical_declaration": "only",
        "variable_declaration": "only",
    },
)

_TS_QUERY = (
    _JS_QUERY
    + """
(abstract_class_declaration) @def
(interface_declaration) @def
(type_alias_declaration) @def
(enum_declaration) @def
(internal_module) @def
(module) @def
(function_signature) @def
(abstract_method_signature) @def
(public_field_definition value: [(arrow_function) (function_expression)]) @def
"""
)


def _ts_ambient_module(node: Node, source: bytes) -> DefMatch | None:
    """``declare module "name" {...}``: the module name without quotes."""
    name_node = node.child_by_field_name("name")
    if name_node is None:
        return None
    return DefMatch(node_text(name_node, source).strip("\"'`"), name_node, "module")


_TS_HANDLERS: dict[str, Handler] = {
    **_JS_HANDLERS,
    "abstract_class_declaration": _by_field("class"),
    "interface_declaration": _by_field("interface"),
    "type_alias_declaration": _by_field("type"),
    "enum_declaration": _by_field("enum"),
    "internal_module": _scoped_field("module"),
    "module": _ts_ambient_module,
    "function_signature": _by_field("function"),
    "abstract_method_signature": _by_field("method"),
    "public_field_definition": _js_field,
}


_TS_WRAPPERS = {
    "export_statement": "last",
    "lexical_declaration": "only",
    "variable_declaration": "only",
    "ambient_declaration": "last",
    "expression_statement": "only",  # `namespace X {}` parses as an expression statement
}

_TYPESCRIPT = Grammar("typescript", _TS_QUERY, _TS_HANDLERS, _TS_WRAPPERS)
_TSX = Grammar("tsx", _TS_QUERY, _TS_HANDLERS, _TS_WRAPPERS)


# --------------------------------------------------------------------------- go


def _go_receiver_type(node: Node, source: bytes) -> str:
    receiver = node.child_by_field_name("receiver")
    if receiver is None:
        return ""
    for parameter in receiver.named_children:
        type_node = parameter.child_by_field_name("type")
        if type_node is not None:
            return _strip_generics(node_text(type_node, source)).lstrip("*&").strip()
    return ""


def _go_method(node: Node, source: bytes) -> DefMatch | None:
    name_node = node.child_by_field_name("name")
    if name_node is None:
        return None
    receiver = _go_receiver_type(node, source)
    return DefMatch(
        node_text(name_node, source), name_node, "method", (receiver,) if receiver else ()
    )


_GO_TYPE_KINDS = {"struct_type": "struct", "interface_type": "interface"}


def _go_type_spec(node: Node, source: bytes) -> DefMatch | None:
    name_node = node.child_by_field_name("name")
    if name_node is None:
        return None
    type_node = node.child_by_field_name("type")
    kind = _GO_TYPE_KINDS.get(type_node.type if type_node is not None else "", "type")
    return DefMatch(node_text(name_node, source), name_node, kind)


_GO = Grammar(
    language="go",
    query="""
    (function_declaration) @def
    (method_declaration) @def
    (type_spec) @def
    (type_alias) @def
    (source_file (const_declaration (const_spec) @def))
    """,
    handlers={
        "function_declaration": _by_field("function"),
        "method_declaration": _go_method,
        "type_spec": _go_type_spec,
        "type_alias": _by_field("type"),
        "const_spec": _by_field("constant"),
    },
    wrappers={"type_declaration": "only"},
)


# --------------------------------------------------------------------------- rust


def _rust_impl(node: Node, source: bytes) -> DefMatch | None:
    """``impl<T> Trait for Stack<T>`` is named after the implementing type: ``Stack``."""
    type_node = node.child_by_field_name("type")
    if type_node is None:
        return None
    while type_node.type == "generic_type":
        inner = type_node.child_by_field_name("type")
        if inner is None:
            break
        type_node = inner
    name = _strip_generics(node_text(type_node, source)).split("::")[-1].strip()
    return DefMatch(name, type_node, "impl")


_RUST = Grammar(
    language="rust",
    query="""
    (function_item) @def
    (function_signature_item) @def
    (struct_item) @def
    (union_item) @def
    (enum_item) @def
    (trait_item) @def
    (impl_item) @def
    (mod_item) @def
    (type_item) @def
    (const_item) @def
    (static_item) @def
    (macro_definition) @def
    """,
    handlers={
        "function_item": _by_field("function"),
        "function_signature_item": _by_field("function"),
        "struct_item": _by_field("struct"),
        "union_item": _by_field("struct"),
        "enum_item": _by_field("enum"),
        "trait_item": _by_field("trait"),
        "impl_item": _rust_impl,
        "mod_item": _by_field("module"),
        "type_item": _by_field("type"),
        "const_item": _by_field("constant"),
        "static_item": _by_field("constant"),
        "macro_definition": _by_field("macro"),
    },
    prefix_types=frozenset({"line_comment", "block_comment", "attribute_item"}),
)


# --------------------------------------------------------------------------- java


def _java_constant(node: Node, source: bytes) -> DefMatch | None:
    """``static final`` fields with UPPER_CASE names."""
    modifiers = next((c for c in node.named_children if c.type == "modifiers"), None)
    if modifiers is None:
        return None
    words = node_text(modifiers, source).split()
    if "static" not in words or "final" not in words:
        return None
    declarator = node.child_by_field_name("declarator")
    name_node = declarator.child_by_field_name("name") if declarator is not None else None
    if name_node is None:
        return None
    name = node_text(name_node, source)
    return DefMatch(name, name_node, "constant") if _UPPER_CASE.match(name) else None


def _java_interface_constant(node: Node, source: bytes) -> DefMatch | None:
    declarator = node.child_by_field_name("declarator")
    name_node = declarator.child_by_field_name("name") if declarator is not None else None
    if name_node is None:
        return None
    return DefMatch(node_text(name_node, source), name_node, "constant")


_JAVA = Grammar(
    language="java",
    query="""
    (class_declaration) @def
    (interface_declaration) @def
    (enum_declaration) @def
    (record_declaration) @def
    (annotation_type_declaration) @def
    (method_declaration) @def
    (constructor_declaration) @def
    (class_body (field_declaration) @def)
    (interface_body (constant_declaration) @def)
    """,
    handlers={
        "class_declaration": _by_field("class"),
        "interface_declaration": _by_field("interface"),
        "enum_declaration": _by_field("enum"),
        "record_declaration": _by_field("class"),
        "annotation_type_declaration": _by_field("interface"),
        "method_declaration": _by_field("method"),
        "constructor_declaration": _by_field("method"),
        "field_declaration": _java_constant,
        "constant_declaration": _java_interface_constant,
    },
    prefix_types=frozenset({"line_comment", "block_comment"}),
)


# --------------------------------------------------------------------------- c / c++

_C_NAME_TYPES = frozenset(
    {
        "identifier",
        "field_identifier",
        "type_identifier",
        "qualified_identifier",
        "destructor_name",
        "operator_name",
        "template_function",
        "primitive_type",
    }
)


def _c_declarator_name(node: Node) -> Node | None:
    """Follow ``declarator`` fields (pointer, reference, function, parenthesised declarators)
    down to the declared name."""
    current: Node | None = node.child_by_field_name("declarator")
    for _ in range(16):
        if current is None or current.type in _C_NAME_TYPES:
            return current
        inner = current.child_by_field_name("declarator")
        if inner is None:  # reference_declarator has no field: its declarator is a plain child
            inner = next(
                (
                    c
                    for c in current.named_children
                    if c.type.endswith("declarator") or c.type in _C_NAME_TYPES
                ),
                None,
            )
        current = inner
    return None


def _c_function(node: Node, source: bytes) -> DefMatch | None:
    name_node = _c_declarator_name(node)
    if name_node is None:
        return None
    match = _split_scoped(name_node, source, "function", re.compile(r"::"))
    if match.qualifier:  # `Polygon::name` defined out of line
        return DefMatch(match.name, match.name_node, "method", match.qualifier)
    return match


_C_SPECIFIER_KINDS = {
    "struct_specifier": "struct",
    "union_specifier": "struct",
    "enum_specifier": "enum",
    "class_specifier": "class",
}


def _c_specifier(node: Node, source: bytes) -> DefMatch | None:
    """``struct name {...}`` with a body; inside a ``typedef`` the typedef names it instead."""
    if node.child_by_field_name("body") is None:
        return None
    parent = node.parent
    if parent is not None and parent.type == "type_definition":
        return None
    name_node = node.child_by_field_name("name")
    if name_node is None:
        return None
    return _split_scoped(name_node, source, _C_SPECIFIER_KINDS[node.type], re.compile(r"::"))


def _c_typedef(node: Node, source: bytes) -> DefMatch | None:
    """``typedef struct {...} name_t;`` is a struct named ``name_t``; other typedefs are types."""
    name_node = _c_declarator_name(node)
    if name_node is None:
        return None
    type_node = node.child_by_field_name("type")
    kind = "type"
    if type_node is not None and type_node.child_by_field_name("body") is not None:
        kind = _C_SPECIFIER_KINDS.get(type_node.type, "type")
    return DefMatch(node_text(name_node, source), name_node, kind)


_C_HANDLERS: dict[str, Handler] = {
    "function_definition": _c_function,
    "struct_specifier": _c_specifier,
    "union_specifier": _c_specifier,
    "enum_specifier": _c_specifier,
    "type_definition": _c_typedef,
    "preproc_def": _upper_case_only(_by_field("constant")),
    "preproc_function_def": _by_field("macro"),
}

_C_QUERY = """
(function_definition) @def
(struct_specifier body: (_)) @def
(union_specifier body: (_)) @def
(enum_specifier body: (_)) @def
(type_definition) @def
(preproc_def) @def
(preproc_function_def) @def
"""

_C = Grammar("c", _C_QUERY, _C_HANDLERS)

_CPP = Grammar(
    language="cpp",
    query=_C_QUERY
    + """
    (class_specifier body: (_)) @def
    (namespace_definition) @def
    (alias_declaration) @def
    """,
    handlers={
        **_C_HANDLERS,
        "class_specifier": _c_specifier,
        "namespace_definition": _scoped_field("module"),
        "alias_declaration": _by_field("type"),
    },
    wrappers={"template_declaration": "last"},
)


# --------------------------------------------------------------------------- ruby


def _ruby_singleton_method(node: Node, source: bytes) -> DefMatch | None:
    """``def self.load`` belongs to the enclosing class; ``def Foo.bar`` to ``Foo``."""
    name_node = node.child_by_field_name("name")
    if name_node is None:
        return None
    owner = node.child_by_field_name("object")
    qualifier: tuple[str, ...] = ()
    if owner is not None and owner.type != "self":
        qualifier = tuple(part for part in node_text(owner, source).split("::") if part)
    return DefMatch(node_text(name_node, source), name_node, "method", qualifier)


def _ruby_constant(node: Node, source: bytes) -> DefMatch | None:
    left = node.child_by_field_name("left")
    if left is None or left.type != "constant":
        return None
    return DefMatch(node_text(left, source), left, "constant")


_RUBY = Grammar(
    language="ruby",
    query="""
    (method) @def
    (singleton_method) @def
    (class) @def
    (module) @def
    (program (assignment left: (constant)) @def)
    (body_statement (assignment left: (constant)) @def)
    """,
    handlers={
        "method": _by_field("function"),
        "singleton_method": _ruby_singleton_method,
        "class": _scoped_field("class"),
        "module": _scoped_field("module"),
        "assignment": _ruby_constant,
    },
    method_parent_kinds=CLASS_LIKE_KINDS | {"module"},
)


# --------------------------------------------------------------------------- php


def _php_constant(node: Node, source: bytes) -> DefMatch | None:
    name_node = next((c for c in node.named_children if c.type == "name"), None)
    if name_node is None:
        return None
    return DefMatch(node_text(name_node, source), name_node, "constant")


_PHP = Grammar(
    language="php",
    query="""
    (function_definition) @def
    (method_declaration) @def
    (class_declaration) @def
    (interface_declaration) @def
    (trait_declaration) @def
    (enum_declaration) @def
    (namespace_definition name: (_)) @def
    (const_element) @def
    """,
    handlers={
        "function_definition": _by_field("function"),
        "method_declaration": _by_field("method"),
        "class_declaration": _by_field("class"),
        "interface_declaration": _by_field("interface"),
        "trait_declaration": _by_field("trait"),
        "enum_declaration": _by_field("enum"),
        "namespace_definition": _by_field("module"),
        "const_element": _php_constant,
    },
)


# --------------------------------------------------------------------------- kotlin


def _kotlin_class(node: Node, source: bytes) -> DefMatch | None:
    """``class``/``interface``/``enum class`` share one node type; the keywords tell them apart."""
    keywords = {child.type for child in node.children if not child.is_named}
    kind = "interface" if "interface" in keywords else "enum" if "enum" in keywords else "class"
    return _first_child(kind, "type_identifier")(node, source)


def _kotlin_function(node: Node, source: bytes) -> DefMatch | None:
    """Extension functions (``fun String.shout()``) are qualified by their receiver type."""
    match = _first_child("function", "simple_identifier")(node, source)
    if match is None:
        return None
    receiver = node.child_by_field_name("receiver")
    if receiver is not None:
        receiver_name = _strip_generics(node_text(receiver, source)).rstrip("?").strip()
        return DefMatch(match.name, match.name_node, "function", (receiver_name,))
    return match


def _kotlin_companion(node: Node, source: bytes) -> DefMatch | None:
    match = _first_child("object", "type_identifier")(node, source)
    if match is not None:
        return match
    return DefMatch("Companion", node, "object")


def _kotlin_constant(node: Node, source: bytes) -> DefMatch | None:
    modifiers = next((c for c in node.named_children if c.type == "modifiers"), None)
    if modifiers is None or "const" not in node_text(modifiers, source).split():
        return None
    variable = next((c for c in node.named_children if c.type == "variable_declaration"), None)
    if variable is None:
        return None
    return _first_child("constant", "simple_identifier")(variable, source)


_KOTLIN = Grammar(
    language="kotlin",
    query="""
    (class_declaration) @def
    (object_declaration) @def
    (companion_object) @def
    (function_declaration) @def
    (type_alias) @def
    (property_declaration (modifiers)) @def
    """,
    handlers={
        "class_declaration": _kotlin_class,
        "object_declaration": _first_child("object", "type_identifier"),
        "companion_object": _kotlin_companion,
        "function_declaration": _kotlin_function,
        "type_alias": _first_child("type", "type_identifier"),
        "property_declaration": _kotlin_constant,
    },
    prefix_types=frozenset({"line_comment", "multiline_comment", "comment"}),
)


# --------------------------------------------------------------------------- swift

_SWIFT_DECLARATION_KINDS = {
    "class": "class",
    "struct": "struct",
    "enum": "enum",
    "extension": "impl",
    "actor": "class",
}


def _swift_class(node: Node, source: bytes) -> DefMatch | None:
    keyword = node.child_by_field_name("declaration_kind")
    kind = _SWIFT_DECLARATION_KINDS.get(node_text(keyword, source) if keyword else "", "class")
    name_node = node.child_by_field_name("name")
    if name_node is None:
        return None
    return DefMatch(_strip_generics(node_text(name_node, source)).strip(), name_node, kind)


def _swift_keyword_named(name: str) -> Handler:
    """``init``/``deinit`` have no name node: name them after the keyword."""

    def handle(node: Node, source: bytes) -> DefMatch | None:
        keyword = next((c for c in node.children if c.type == name), node)
        return DefMatch(name, keyword, "method")

    return handle


_SWIFT = Grammar(
    language="swift",
    query="""
    (class_declaration) @def
    (protocol_declaration) @def
    (function_declaration) @def
    (protocol_function_declaration) @def
    (init_declaration) @def
    (deinit_declaration) @def
    (typealias_declaration) @def
    """,
    handlers={
        "class_declaration": _swift_class,
        "protocol_declaration": _by_field("interface"),
        "function_declaration": _by_field("function"),
        "protocol_function_declaration": _by_field("method"),
        "init_declaration": _swift_keyword_named("init"),
        "deinit_declaration": _swift_keyword_named("deinit"),
        "typealias_declaration": _by_field("type"),
    },
    prefix_types=frozenset({"comment", "multiline_comment"}),
)


# --------------------------------------------------------------------------- scala

_SCALA = Grammar(
    language="scala",
    query="""
    (class_definition) @def
    (object_definition) @def
    (trait_definition) @def
    (enum_definition) @def
    (function_definition) @def
    (function_declaration) @def
    (type_definition) @def
    """,
    handlers={
        "class_definition": _by_field("class"),
        "object_definition": _by_field("object"),
        "trait_definition": _by_field("trait"),
        "enum_definition": _by_field("enum"),
        "function_definition": _by_field("function"),
        "function_declaration": _by_field("function"),
        "type_definition": _by_field("type"),
    },
    prefix_types=frozenset({"comment", "block_comment"}),
)


# --------------------------------------------------------------------------- bash

_BASH = Grammar(
    language="bash",
    query="(function_definition) @def",
    handlers={"function_definition": _by_field("function")},
)


# --------------------------------------------------------------------------- lua


def _lua_function(node: Node, source: bytes) -> DefMatch | None:
    """``function M.new`` -> ``M.new`` (function); ``function M:deposit`` -> method."""
    name_node = node.child_by_field_name("name")
    if name_node is None:
        return None
    kind = "method" if name_node.type == "method_index_expression" else "function"
    return _split_scoped(name_node, source, kind, re.compile(r"[.:]"))


def _lua_assigned_function(node: Node, source: bytes) -> DefMatch | None:
    """``local f = function() end`` and ``M.f = function() end``."""
    names = next((c for c in node.named_children if c.type == "variable_list"), None)
    values = next((c for c in node.named_children if c.type == "expression_list"), None)
    if names is None or values is None or names.named_child_count != 1:
        return None
    if values.named_child_count != 1 or values.named_children[0].type != "function_definition":
        return None
    return _split_scoped(names.named_children[0], source, "function", re.compile(r"[.:]"))


_LUA = Grammar(
    language="lua",
    query="""
    (function_declaration) @def
    (assignment_statement (expression_list (function_definition))) @def
    """,
    handlers={
        "function_declaration": _lua_function,
        "assignment_statement": _lua_assigned_function,
    },
    wrappers={"variable_declaration": "only"},
)


GRAMMARS: dict[str, Grammar] = {
    grammar.language: grammar
    for grammar in (
        _PYTHON,
        _JAVASCRIPT,
        _TYPESCRIPT,
        _TSX,
        _GO,
        _RUST,
        _JAVA,
        _C,
        _CPP,
        _RUBY,
        _PHP,
        _KOTLIN,
        _SWIFT,
        _SCALA,
        _BASH,
        _LUA,
    )
}
