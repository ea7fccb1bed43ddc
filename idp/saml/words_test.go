package saml

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryRefusalHasChinese reads the package's sources for every reason a request can be
// refused with — a literal handed to badRequest, a requestError's Public, refuse or notSignedOut
// — and checks each has its Chinese: a Chinese page must not show an English reason. Reasons
// built around a name are checked with a name filled in.
func TestEveryRefusalHasChinese(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	const part = `(?:"(?:[^"\\]|\\.)*"|[\w.]+)`
	lit := regexp.MustCompile(`(?:badRequest\(|Public: |refuse\(w, r, [^,]+, |notSignedOut\(w, r, [^,]+, |errors\.New\(|fmt\.Errorf\()("` +
		`(?:[^"\\]|\\.)*"(?:\s*\+\s*` + part + `)*)`)
	piece := regexp.MustCompile(part)
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "words.go" {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range lit.FindAllStringSubmatch(string(src), -1) {
			why := ""
			for _, p := range piece.FindAllString(m[1], -1) {
				if strings.HasPrefix(p, `"`) {
					why += strings.ReplaceAll(p[1:len(p)-1], `\"`, `"`)
				} else {
					why += "X" // a name
				}
			}
			isErr := strings.HasPrefix(m[0], "errors.New") || strings.HasPrefix(m[0], "fmt.Errorf")
			if isErr && !strings.Contains(why, "this app identifies") && !strings.Contains(why, "unknown NameID") {
				continue // an error for the log, not a page
			}
			why = strings.NewReplacer("%s", "X", "%q", `"X"`).Replace(why)
			if _, ok := reasonText(why); !ok {
				t.Errorf("%s: no Chinese for the refusal %q", f, why)
			}
			n++
		}
	}
	if n < 40 {
		t.Fatalf("found only %d refusals in the sources; the pattern no longer matches how they are written", n)
	}
	for _, why := range []string{"parameter SAMLRequest is given more than once", "the AuthnRequest has no usable ID", "unknown service provider https://sp.example/md"} {
		if zh := reasonZH(why); zh == why || !regexp.MustCompile(`\p{Han}`).MatchString(zh) {
			t.Errorf("%q in Chinese is %q", why, zh)
		}
	}
}
