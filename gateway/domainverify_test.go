package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/internal/config"
)

// The WeCom console accepts a trusted domain only once its ownership file answers at the
// domain's root: the gateway serves the file a WeCom source configures, and the simulator's
// console check passes against it.
func TestWeComDomainVerificationFile(t *testing.T) {
	var file, content string
	w := newWorld(t, 30, t.TempDir(), true, func(cfg *config.Config) {
		for i := range cfg.Enterprises {
			for j := range cfg.Enterprises[i].Sources {
				if s := &cfg.Enterprises[i].Sources[j]; s.Kind == "wecom" {
					file, content = wecomsim.DomainFile(s.Config["corp_id"], 1000002)
					s.Config["domain_verify_file"], s.Config["domain_verify_content"] = file, content
				}
			}
		}
	})
	resp, err := http.Get(w.base + "/" + file)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != content || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /%s = %d %q", file, resp.StatusCode, body)
	}
	for _, p := range []string{"/WW_verify_nothere.txt", "/WW_verify_../x.txt"} {
		if r, err := http.Get(w.base + p); err != nil || r.StatusCode != 404 {
			t.Fatalf("GET %s = %v %v", p, r, err)
		} else {
			r.Body.Close()
		}
	}
	r, err := http.Post(w.wURL+"/_sim/apps/1000002/trusted-domain", "application/json",
		strings.NewReader(`{"domain":"`+strings.TrimPrefix(w.base, "http://")+`"}`))
	if err != nil || r.StatusCode != 204 {
		b, _ := io.ReadAll(r.Body)
		t.Fatalf("the simulated console refused the gateway's domain: %v %v %s", r, err, b)
	}
	r.Body.Close()
}
