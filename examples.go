// Package unbrick holds what ships inside the binary besides code: the
// example recipes, one per supported family, with their signed images and
// the public half of the test signing key. The demo runs its virtual bench
// with them, and `unbrick recipe test` proves a recipe against the same
// device models. They live in testdata/recipes so that the recipe tests
// check the very files the demo runs; see testdata/recipes/README.md for the
// format.
package unbrick

import "embed"

// Examples holds testdata/recipes/*.yaml, their images and signatures, and
// testdata/keys/unbrick-test.pub (a test key: never trust it on a real
// bench).
//
//go:embed testdata/recipes/*.yaml testdata/recipes/images testdata/keys/unbrick-test.pub
var Examples embed.FS
