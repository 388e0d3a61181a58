// Package yamlpos is the one YAML front end of the station's files (bench
// files, recipes): it parses YAML 1.2 with github.com/goccy/go-yaml, a
// maintained parser that places syntax errors at their line and column, into
// a small node tree where every node knows its line and column, and it holds
// the one position and error type both file formats report with.
//
// The tree is deliberately plain: mappings keep their keys in file order
// (duplicates included, for the decoder to report), anchors and aliases are
// resolved, and scalars carry their text with the core schema's tag
// (!!str, !!int, !!float, !!bool, !!null), so that the decoders decide
// types themselves and can say exactly what is wrong and where.
package yamlpos

import (
	"errors"
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Pos is a place in a file: 1-based line and column.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Error is a problem at a place in a file: where, what, and what to do
// about it.
type Error struct {
	Pos  Pos
	Msg  string
	Hint string // what to do about it; may be empty
}

func (e *Error) Error() string {
	if e.Hint == "" {
		return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
	}
	return fmt.Sprintf("%s: %s (hint: %s)", e.Pos, e.Msg, e.Hint)
}

// Kind is what a node is.
type Kind int

// Node kinds.
const (
	ScalarNode Kind = iota + 1
	MappingNode
	SequenceNode
)

// Node is a YAML node with its place in the file.
type Node struct {
	Kind Kind
	// Tag is the scalar's core-schema tag: !!str, !!int, !!float, !!bool
	// or !!null ("" for mappings and sequences).
	Tag string
	// Value is the scalar's text as written, quotes and escapes resolved.
	Value string
	// Line and Column place the node: a scalar's first character, a block
	// mapping's first key, a block sequence's first dash, a flow
	// collection's opening bracket.
	Line, Column int
	// Content holds a mapping's keys and values alternately, or a
	// sequence's items.
	Content []*Node
}

// Pos returns where n is in file.
func (n *Node) Pos(file string) Pos { return Pos{File: file, Line: n.Line, Col: n.Column} }

// Parse parses the first document of data. It returns nil and no error for
// an empty document. A syntax error is an *Error at the line and column
// where the parser found it.
func Parse(file string, data []byte) (*Node, error) {
	f, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey()) // the decoders say which key, and where it was first
	if err != nil {
		return nil, syntaxError(file, err)
	}
	if len(f.Docs) == 0 || f.Docs[0] == nil || f.Docs[0].Body == nil {
		return nil, nil
	}
	c := &converter{anchors: map[string]*Node{}, lines: strings.Split(string(data), "\n")}
	n := c.node(f.Docs[0].Body)
	if c.err != nil {
		return nil, &Error{Pos: Pos{file, c.errTok.Position.Line, c.errTok.Position.Column}, Msg: c.err.Error(),
			Hint: "define the anchor (&name) before its alias (*name)"}
	}
	return n, nil
}

// syntaxError places a parser error; the library's errors carry the token
// at fault.
func syntaxError(file string, err error) error {
	var te interface {
		GetToken() *token.Token
		GetMessage() string
	}
	if errors.As(err, &te) && te.GetToken() != nil {
		p := te.GetToken().Position
		return &Error{Pos: Pos{file, p.Line, p.Column}, Msg: "YAML syntax: " + te.GetMessage(),
			Hint: "check the indentation, and quote values that hold ': ' or start with a special character"}
	}
	return &Error{Pos: Pos{File: file, Line: 1, Col: 1}, Msg: "YAML: " + err.Error(), Hint: "check the indentation and quoting"}
}

type converter struct {
	lines   []string
	anchors map[string]*Node
	err     error
	errTok  *token.Token
}

func at(n *Node, t *token.Token) *Node {
	if t != nil {
		n.Line, n.Column = t.Position.Line, t.Position.Column
	}
	return n
}

func scalar(tag, value string, t *token.Token) *Node {
	return at(&Node{Kind: ScalarNode, Tag: tag, Value: value}, t)
}

// text is a scalar's text as written (for numbers: 0x1000 stays 0x1000).
func text(t *token.Token) string {
	if t == nil {
		return ""
	}
	return t.Value
}

// written returns a null's text as the file has it (~, null), or "" for an
// empty value, which the parser gives a made-up token.
func (c *converter) written(t *token.Token) string {
	if t == nil || t.Position.Line < 1 || t.Position.Line > len(c.lines) {
		return ""
	}
	l := c.lines[t.Position.Line-1]
	if col := t.Position.Column - 1; col >= 0 && col < len(l) && strings.HasPrefix(l[col:], t.Value) {
		return t.Value
	}
	return ""
}

func (c *converter) node(n ast.Node) *Node {
	switch n := n.(type) {
	case nil:
		return &Node{Kind: ScalarNode, Tag: "!!null"}
	case *ast.NullNode:
		return scalar("!!null", c.written(n.Token), n.Token)
	case *ast.StringNode:
		return scalar("!!str", n.Value, n.Token)
	case *ast.LiteralNode:
		s := ""
		if n.Value != nil {
			s = n.Value.Value
		}
		return scalar("!!str", s, n.Start)
	case *ast.IntegerNode:
		return scalar("!!int", text(n.Token), n.Token)
	case *ast.FloatNode:
		return scalar("!!float", text(n.Token), n.Token)
	case *ast.InfinityNode:
		return scalar("!!float", text(n.Token), n.Token)
	case *ast.NanNode:
		return scalar("!!float", text(n.Token), n.Token)
	case *ast.BoolNode:
		return scalar("!!bool", text(n.Token), n.Token)
	case *ast.MappingNode:
		out := &Node{Kind: MappingNode}
		for _, v := range n.Values {
			c.pair(out, v)
		}
		if n.IsFlowStyle || len(out.Content) == 0 {
			at(out, n.Start)
		} else {
			out.Line, out.Column = out.Content[0].Line, out.Content[0].Column
		}
		return out
	case *ast.MappingValueNode:
		// A mapping of one key.
		out := &Node{Kind: MappingNode}
		c.pair(out, n)
		out.Line, out.Column = out.Content[0].Line, out.Content[0].Column
		return out
	case *ast.MappingKeyNode:
		return c.node(n.Value)
	case *ast.SequenceNode:
		out := at(&Node{Kind: SequenceNode}, n.Start)
		for _, v := range n.Values {
			out.Content = append(out.Content, c.node(v))
		}
		return out
	case *ast.AnchorNode:
		v := at(c.node(n.Value), n.Start) // placed at its anchor, as YAML places it
		if name := n.Name; name != nil {
			c.anchors[name.String()] = v
		}
		return v
	case *ast.AliasNode:
		name := ""
		if n.Value != nil {
			name = n.Value.String()
		}
		if v, ok := c.anchors[name]; ok {
			return v
		}
		if c.err == nil {
			c.err, c.errTok = fmt.Errorf("alias *%s names no anchor", name), n.Start
		}
		return scalar("!!null", "", n.Start)
	case *ast.TagNode:
		v := at(c.node(n.Value), n.Start)
		if tag := n.Start.Value; v.Kind == ScalarNode && strings.HasPrefix(tag, "!!") {
			v.Tag = tag
		}
		return v
	case *ast.CommentNode, *ast.CommentGroupNode:
		return &Node{Kind: ScalarNode, Tag: "!!null"}
	}
	tok := n.GetToken()
	out := scalar("!!str", text(tok), tok)
	return out
}

func (c *converter) pair(out *Node, v *ast.MappingValueNode) {
	var k *Node
	if v.Key != nil {
		k = c.node(v.Key)
	} else {
		k = scalar("!!null", "", v.Start)
	}
	val := c.node(v.Value)
	if val.Line == 0 {
		// An empty value sits where its key's colon is.
		at(val, v.Start)
	}
	out.Content = append(out.Content, k, val)
}
