package oidc

import (
	"strings"
	"testing"
)

func TestUserCodes(t *testing.T) {
	for i := 0; i < 200; i++ {
		c := newUserCode()
		if len(c) != userCodeLen || strings.Trim(c, userCodeAlphabet) != "" {
			t.Fatalf("user code %q", c)
		}
		if got := normalizeUserCode(strings.ToLower(displayUserCode(c))); got != c {
			t.Fatalf("%q typed in lower case with its dash reads %q", c, got)
		}
	}
	for typed, want := range map[string]string{
		"BCDF-GHJK": "BCDFGHJK", "bcdf ghjk": "BCDFGHJK", " bcdfghjk ": "BCDFGHJK",
		"BCDF-GHJ": "", "BCDF-GHJKL": "", "ABCD-EFGH": "", "BCDF-GHJ0": "", "": "", strings.Repeat("B", 40): "",
	} {
		if got := normalizeUserCode(typed); got != want {
			t.Errorf("normalizeUserCode(%q) = %q, want %q", typed, got, want)
		}
	}
}
