package yamlpos

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestSyntaxErrorColumn checks that a syntax error names the line and the
// column where the file goes wrong, not the start of its line.
func TestSyntaxErrorColumn(t *testing.T) {
	for _, c := range []struct {
		name, doc string
		line, col int
	}{
		{"unclosed quote", "name: ok\nbaud: \"115200\n", 2, 7},
		{"tab indentation", "serial:\n\tbaud: 1\n", 2, 1},
		{"colon in plain value", "a: 1\nhint: use: this\n", 2, 7}, // the value to quote
		{"unclosed flow list", "a: 1\nb: [1, 2\n", 2, 4},
		{"stray text after a list", "steps:\n  - enter\n  x\n", 3, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(c.doc))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) = %v, want an *Error", c.doc, err)
			}
			if e.Pos.Line != c.line || e.Pos.Col != c.col {
				t.Errorf("Parse(%q) = %v, want it at %d:%d", c.doc, err, c.line, c.col)
			}
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("f.yaml:%d:%d: ", c.line, c.col)) || e.Hint == "" {
				t.Errorf("Parse(%q) = %q, want file:line:col first and a hint", c.doc, err)
			}
		})
	}
}

// TestNodes checks the tree: kinds, tags, text as written, and places.
func TestNodes(t *testing.T) {
	doc := "name: x\nsize: 0x1000\nempty:\nlist:\n  - enter\n  - write: app\n    within: 2s\nflow: {a: 1.5, b: [true, ~]}\nbase: &b {k: v}\ncopy: *b\n"
	n, err := Parse("f.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var walk func(n *Node)
	walk = func(n *Node) {
		got = append(got, fmt.Sprintf("%d %s %q %d:%d", n.Kind, n.Tag, n.Value, n.Line, n.Column))
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	want := []string{
		`2  "" 1:1`,
		`1 !!str "name" 1:1`, `1 !!str "x" 1:7`,
		`1 !!str "size" 2:1`, `1 !!int "0x1000" 2:7`,
		`1 !!str "empty" 3:1`, `1 !!null "" 3:7`,
		`1 !!str "list" 4:1`, `3  "" 5:3`,
		`1 !!str "enter" 5:5`, `2  "" 6:5`, `1 !!str "write" 6:5`, `1 !!str "app" 6:12`, `1 !!str "within" 7:5`, `1 !!str "2s" 7:13`,
		`1 !!str "flow" 8:1`, `2  "" 8:7`, `1 !!str "a" 8:8`, `1 !!float "1.5" 8:11`, `1 !!str "b" 8:16`, `3  "" 8:19`, `1 !!bool "true" 8:20`, `1 !!null "~" 8:26`,
		`1 !!str "base" 9:1`, `2  "" 9:7`, `1 !!str "k" 9:11`, `1 !!str "v" 9:14`,
		`1 !!str "copy" 10:1`, `2  "" 9:7`, `1 !!str "k" 9:11`, `1 !!str "v" 9:14`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Parse(%q) =\n%s\nwant\n%s", doc, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n, err := Parse("f.yaml", []byte("# nothing\n")); n != nil || err != nil {
		t.Errorf("Parse(comment only) = %v, %v, want nil, nil", n, err)
	}
	if _, err := Parse("f.yaml", []byte("a: *nope\n")); err == nil || !strings.Contains(err.Error(), "f.yaml:1:") {
		t.Errorf("Parse(unknown alias) = %v, want an error at line 1", err)
	}
}
