package db

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sqlCalls are the database/sql methods whose first SQL argument is the
// statement.
var sqlCalls = map[string]bool{"Exec": true, "ExecContext": true, "Query": true, "QueryContext": true,
	"QueryRow": true, "QueryRowContext": true, "Prepare": true, "PrepareContext": true}

// sqlExceptions are statements not built from literals in the source, with
// why they are safe.
var sqlExceptions = map[string]string{
	"db/store.go:migrate": "runs the migration files embedded in the binary (db/migrations); no input reaches them",
	// Reviewed: these WHERE clauses are joined from literal conditions with
	// ? placeholders (Filter.where, Store.Images).
	"db/records.go:Attempts": "where from Filter.where: literal conditions only",
	"db/catalog.go:images":   "where from Store.Images: literal conditions only",
	"db/users.go:change":     "q is one of the literal statements of SetUserHash and RemoveUser; values go as ? parameters",
	// Reviewed with the dashboard's rollups: literal SQL and ? parameters.
	"db/dash.go:scanCounts":     "q from its callers (Groups, Series, Units...): literal SQL joined with literal conditions, values as ? parameters",
	"db/export.go:Export":       "where from Filter.where: literal conditions only; attemptCols is a constant",
	"db/generate.go:Generate":   "PRAGMAs from a literal list, and CREATE INDEX statements read back from the file's own sqlite_master",
	"db/roll.go:rebuildRollups": "statements ranged from a literal list; visit.Exec and mark.Exec are prepared statements given values",
	"db/generate.go:generateTx": "DROP INDEX of names read from the file's own sqlite_master (the generator's fresh database)",
}

// TestSQLIsParameterised reads every Go file of the module and fails on a
// database call whose statement is not made of string literals alone
// (directly, or through a local variable only ever assigned literals and
// itself plus literals): values go in as ? parameters, never into the text.
func TestSQLIsParameterised(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	calls := 0
	files := map[string][]*ast.File{} // by directory
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files[filepath.Dir(path)] = append(files[filepath.Dir(path)], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The package-level constants and variables of each directory.
	globals := map[string]*ast.BlockStmt{}
	for dir, fs := range files {
		b := &ast.BlockStmt{}
		for _, f := range fs {
			for _, decl := range f.Decls {
				if gd, ok := decl.(*ast.GenDecl); ok && (gd.Tok == token.CONST || gd.Tok == token.VAR) {
					b.List = append(b.List, &ast.DeclStmt{Decl: gd})
				}
			}
		}
		globals[dir] = b
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || !sqlCalls[sel.Sel.Name] || len(call.Args) == 0 {
					return true
				}
				arg := call.Args[0]
				if strings.HasSuffix(sel.Sel.Name, "Context") && len(call.Args) > 1 {
					arg = call.Args[1]
				}
				if !isSQLText(arg, fn.Body, nil) {
					return true // not a statement (an Exec of something else)
				}
				calls++
				scope := &ast.BlockStmt{List: append(append([]ast.Stmt{}, globals[filepath.Dir(path)].List...), fn.Body.List...)}
				if !literalSQL(arg, scope, map[string]bool{}) {
					key := filepath.ToSlash(rel) + ":" + fn.Name.Name
					if _, ok := sqlExceptions[key]; !ok {
						t.Errorf("%s: %s(%s): the statement is not built from literals alone; pass values as ? parameters",
							fset.Position(call.Pos()), sel.Sel.Name, exprString(fset, arg))
					}
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls < 20 {
		t.Fatalf("found only %d database calls; the scan is broken", calls)
	}
}

// isSQLText reports whether e looks like a statement: a string literal, a
// string variable, a concatenation or a conversion to string.
func isSQLText(e ast.Expr, body *ast.BlockStmt, _ map[string]bool) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return e.Kind == token.STRING
	case *ast.BinaryExpr:
		return e.Op == token.ADD
	case *ast.Ident:
		return true
	case *ast.CallExpr:
		id, ok := e.Fun.(*ast.Ident)
		return ok && id.Name == "string"
	}
	return false
}

// literalSQL reports whether e is made of string literals only, following
// local variables through their assignments in body.
func literalSQL(e ast.Expr, body *ast.BlockStmt, seen map[string]bool) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return e.Kind == token.STRING
	case *ast.ParenExpr:
		return literalSQL(e.X, body, seen)
	case *ast.CallExpr:
		// strings.Join(conds, " AND ") and append(conds, "x = ?") of literals.
		if sel, ok := e.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Join" && len(e.Args) == 2 {
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "strings" {
				return literalSQL(e.Args[0], body, seen) && literalSQL(e.Args[1], body, seen)
			}
		}
		if id, ok := e.Fun.(*ast.Ident); ok && id.Name == "append" && e.Ellipsis == token.NoPos {
			for _, a := range e.Args {
				if !literalSQL(a, body, seen) {
					return false
				}
			}
			return true
		}
		return false
	case *ast.BinaryExpr:
		return e.Op == token.ADD && literalSQL(e.X, body, seen) && literalSQL(e.Y, body, seen)
	case *ast.Ident:
		if seen[e.Name] {
			return true // q = q + "...": the rest is checked where q is assigned
		}
		seen[e.Name] = true
		found, ok := false, true
		ast.Inspect(body, func(n ast.Node) bool {
			switch s := n.(type) {
			case *ast.AssignStmt:
				for i, l := range s.Lhs {
					if id, isID := l.(*ast.Ident); isID && id.Name == e.Name && len(s.Rhs) == len(s.Lhs) {
						found = true
						ok = ok && literalSQL(s.Rhs[i], body, seen)
					}
				}
			case *ast.ValueSpec:
				for i, id := range s.Names {
					switch {
					case id.Name == e.Name && i < len(s.Values):
						found = true
						ok = ok && literalSQL(s.Values[i], body, seen)
					case id.Name == e.Name && len(s.Values) == 0:
						found = true // declared empty: var conds []string
					}
				}
			}
			return true
		})
		return found && ok
	}
	return false
}

func exprString(fset *token.FileSet, e ast.Expr) string {
	src, err := os.ReadFile(fset.Position(e.Pos()).Filename)
	if err != nil {
		return "?"
	}
	return string(src[fset.Position(e.Pos()).Offset:fset.Position(e.End()).Offset])
}

// TestHostileTextIsStoredAsText: a serial number and a reason made of SQL
// are stored and read back as the text they are, and the tables survive.
func TestHostileTextIsStoredAsText(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "unbrick.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	evil := `x'); DROP TABLE attempts; --`
	if err := s.UpsertUnit(ctx, Unit{Serial: evil, Protocol: "stm32", Chip: "'; DELETE FROM units; --"}); err != nil {
		t.Fatal(err)
	}
	id, err := s.StartAttempt(ctx, AttemptStart{Slot: 1, SlotName: "slot 1", Recipe: "r' OR '1'='1", Serial: evil})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Attempt(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if a.Serial != evil || a.Recipe != "r' OR '1'='1" {
		t.Errorf("Attempt(%d) = serial %q recipe %q, want the text as given", id, a.Serial, a.Recipe)
	}
	if as, err := s.Attempts(ctx, Filter{}); err != nil || len(as) != 1 {
		t.Errorf("Attempts() = %d, %v after hostile text, want the one attempt", len(as), err)
	}
}
