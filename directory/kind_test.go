package directory_test

import (
	"errors"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
	_ "github.com/qiao-gateway/qiao/federation/connectors" // links the platform kinds
	"github.com/qiao-gateway/qiao/internal/config"
)

// The directory knows its own kind and the shape of a kind's name; which platform kinds exist is
// the registry's. The names it keeps for code and tests must be kinds the registry has.
func TestSourceKinds(t *testing.T) {
	if string(directory.KindLocal) != config.LocalKind {
		t.Fatalf("the directory's own kind %q is config's %q", directory.KindLocal, config.LocalKind)
	}
	for _, k := range []directory.SourceKind{directory.KindWeCom, directory.KindDingTalk} {
		if _, ok := federation.LookupKind(string(k)); !ok || !k.Valid() {
			t.Errorf("kind %q is not registered", k)
		}
	}
	for _, name := range federation.KindNames() {
		if !directory.SourceKind(name).Valid() {
			t.Errorf("registered kind %q is not a valid source kind", name)
		}
	}
	for _, k := range []directory.SourceKind{"", "WeCom", "1x", "we com", "x/y", "a23456789012345678901234567890123"} {
		if k.Valid() {
			t.Errorf("%q is valid", k)
		}
	}
	src := &directory.IdentitySource{EnterpriseID: "acme", ID: "s", Kind: "we com", Name: "源一"}
	var fe *directory.FieldError
	if err := src.Validate(); err == nil || !errors.As(err, &fe) || fe.Field != "kind" {
		t.Fatalf("bad kind: %v", err)
	}
}
