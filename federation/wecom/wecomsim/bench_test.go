package wecomsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

var (
	benchOnce sync.Once
	benchSrv  *httptest.Server
	benchSim  *Sim
	benchTok  map[string]string
)

// benchServer serves a 100k-user org with rate limits off, over real HTTP on loopback.
func benchServer(b *testing.B) (*httptest.Server, *Sim, map[string]string) {
	benchOnce.Do(func() {
		s := NewSetup(100000, 42, "127.0.0.1:8080")
		s.Config.RateLimits = false
		benchSim = New(s.Config)
		benchSrv = httptest.NewServer(benchSim)
		benchTok = map[string]string{}
		for name, secret := range map[string]string{"app": s.Secret, "contact": s.ContactSecret} {
			resp, err := http.Get(benchSrv.URL + "/cgi-bin/gettoken?corpid=" + s.CorpID + "&corpsecret=" + secret)
			if err != nil {
				panic(err)
			}
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			benchTok[name] = m["access_token"].(string)
		}
	})
	return benchSrv, benchSim, benchTok
}

func drain(b *testing.B, resp *http.Response, err error) {
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || n < 30 {
		b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
	}
}

// BenchmarkUserListPage: user/list of one department (full user records), what a sync reads per
// department. Reported as pages/s.
func BenchmarkUserListPage(b *testing.B) {
	srv, sim, tok := benchServer(b)
	sim.Org().RLock()
	depts := append([]int(nil), sim.Org().DeptIDs()...)
	sim.Org().RUnlock()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(1, 2))
		for pb.Next() {
			d := depts[r.IntN(len(depts))]
			resp, err := client.Get(fmt.Sprintf("%s/cgi-bin/user/list?department_id=%d&access_token=%s", srv.URL, d, tok["app"]))
			drain(b, resp, err)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
}

// BenchmarkUserListIDPage: user/list_id pages of 1,000 rows with the contact-sync secret.
func BenchmarkUserListIDPage(b *testing.B) {
	srv, sim, tok := benchServer(b)
	sim.Org().RLock()
	total := sim.Org().RowsCount()
	sim.Org().RUnlock()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(3, 4))
		for pb.Next() {
			start := r.IntN(total)
			cursor := ""
			if start > 0 {
				cursor = encodeCursor(start)
			}
			body, _ := json.Marshal(map[string]any{"cursor": cursor, "limit": 1000})
			resp, err := client.Post(srv.URL+"/cgi-bin/user/list_id?access_token="+tok["contact"], "application/json", bytes.NewReader(body))
			drain(b, resp, err)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
}
