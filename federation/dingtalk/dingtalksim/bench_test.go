package dingtalksim

import (
	"bytes"
	"encoding/json"
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
	benchTok  string
)

func benchServer(b *testing.B) (*httptest.Server, *Sim, string) {
	benchOnce.Do(func() {
		s := NewSetup(100000, 42, "127.0.0.1:8080")
		s.Config.RateLimits = false
		benchSim = New(s.Config)
		benchSrv = httptest.NewServer(benchSim)
		resp, err := http.Get(benchSrv.URL + "/gettoken?appkey=" + s.AppKey + "&appsecret=" + s.AppSecret)
		if err != nil {
			panic(err)
		}
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		benchTok = m["access_token"].(string)
	})
	return benchSrv, benchSim, benchTok
}

// BenchmarkUserListPage: v2/user/list pages of up to 100 full user records.
func BenchmarkUserListPage(b *testing.B) {
	srv, sim, tok := benchServer(b)
	sim.Org().RLock()
	depts := append([]int(nil), sim.Org().DeptIDs()...)
	sim.Org().RUnlock()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(5, 6))
		for pb.Next() {
			body, _ := json.Marshal(map[string]any{"dept_id": depts[r.IntN(len(depts))], "cursor": 0, "size": 100})
			resp, err := client.Post(srv.URL+"/topapi/v2/user/list?access_token="+tok, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n < 30 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
}
