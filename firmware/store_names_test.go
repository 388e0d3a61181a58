package firmware

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStoreNamesCannotEscape: the image store names every file by the
// SHA-256 of its bytes, whatever the image was called when it came in, and
// refuses any other name on the way out, so no name can reach a file
// outside the store.
func TestStoreNamesCannotEscape(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "images")
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(root, "secret")
	if err := os.WriteFile(secret, []byte("not an image"), 0o600); err != nil {
		t.Fatal(err)
	}
	sha, err := s.Put([]byte("firmware bytes"))
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Path(sha); filepath.Dir(p) != dir || filepath.Base(p) != sha {
		t.Errorf("Put stored the image at %s, want %s/<sha256>", p, dir)
	}
	hostile := []string{"../secret", "..", "/etc/passwd", "images/../../secret", "..%2fsecret",
		strings.Repeat("a", 61) + "/..", strings.Repeat("../", 21) + "x", sha + "/../../secret", strings.ToUpper(sha[:63]) + "/", ""}
	for _, name := range hostile {
		if _, err := s.Get(name); err == nil {
			t.Errorf("Get(%q) read a file; want a refusal", name)
		}
		if s.Has(name) {
			t.Errorf("Has(%q) = true", name)
		}
	}
	if b, err := s.Get(strings.ToUpper(sha)); err != nil || string(b) != "firmware bytes" {
		t.Errorf("Get(upper-case sha) = %q, %v; want the image", b, err)
	}
}
