package console

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestLanguageSwitchAnswersInTheNewLanguage: ?lang= switches the page that answers it, even when
// the browser still sends its earlier choice, and keeps the browser's other cookies.
func TestLanguageSwitchAnswersInTheNewLanguage(t *testing.T) {
	c := &Console{ExternalURL: "https://sso.example"}
	c.mux = http.NewServeMux()
	var got, sso string
	c.mux.HandleFunc("GET /console/x", func(w http.ResponseWriter, r *http.Request) {
		got = lang(r)
		if ck, err := r.Cookie("qiao_sso"); err == nil {
			sso = ck.Value
		}
	})
	for _, tc := range []struct{ had, switchTo string }{{"en", "zh-CN"}, {"zh-CN", "en"}, {"", "en"}} {
		r := httptest.NewRequest("GET", "/console/x?lang="+tc.switchTo, nil)
		if tc.had != "" {
			r.AddCookie(&http.Cookie{Name: langCookie, Value: tc.had})
		}
		r.AddCookie(&http.Cookie{Name: "qiao_sso", Value: "abc-123"})
		got, sso = "", ""
		c.Handler().ServeHTTP(httptest.NewRecorder(), r)
		if got != tc.switchTo || sso != "abc-123" {
			t.Errorf("had %q, switched to %q: the page is in %q (session cookie %q)", tc.had, tc.switchTo, got, sso)
		}
	}
}
