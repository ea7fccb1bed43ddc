// Command scaleoutbench measures qiao scaled out: real `qiao serve` processes on a PostgreSQL and a
// Redis of their own (test/scaleout/cluster starts them as test/scaleout does), behind a
// round-robin proxy in this process.
//
// The token endpoint (refresh_token, and client_credentials with JWT access tokens) at a given
// concurrency against one replica and against three, each measurement followed by the raw RS256
// signing rate of a 2048-bit key (the gateway's) in this process, so each figure is read beside the
// machine's signing rate of its moment. Both go through the proxy (one backend, then three), so
// the difference is the replicas'. Then departure → revocation with three replicas: people are
// removed in the WeCom simulator, which pushes each event to the proxy (so to any replica); the
// latency runs from the removal to the revoked_at the replica that applied it wrote on the
// person's refresh token.
//
//	go run ./bench/scaleoutbench -c 64 -d 60s -events 200 -rate 20
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/qiao-gateway/qiao/bench/benchkit"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/test/scaleout/cluster"
)

const configYAML = `external_url: {{EXT}}
log: {level: error, format: text}
trusted_proxies: [127.0.0.1/32]
sync_scheduler: false
enterprises:
  - id: acme
    name: Acme
    sources:
      - id: wecom
        kind: wecom
        name: 企业微信
        sync: {auto: false, user_info: true}
        config: {corp_id: {{CORP}}, agent_id: "{{AGENT}}", api_base_url: {{SIM}}, login_base_url: {{SIM}}, open_base_url: {{SIM}}, oauth_base_url: {{SIM}}, callback_domain: "{{DOMAIN}}", rate_limit: "off"}
        secrets: {secret: "{{SECRET}}", contact_secret: "{{CSECRET}}", callback_token: "{{TOKEN}}", encoding_aes_key: "{{AES}}"}
    clients:
      - id: web
        type: web
        secret: web-secret-0123456789abcdef
        auth_method: client_secret_basic
        access_token_format: jwt
        redirect_uris: ["{{EXT}}/cb"]
      - id: svc
        type: service
        secret: svc-secret-0123456789abcdef
        access_token_format: jwt
`

func main() {
	conc := flag.Int("c", 64, "concurrent clients")
	dur := flag.Duration("d", 60*time.Second, "duration of each token measurement (the sign rate is measured for a quarter of it after each)")
	events := flag.Int("events", 200, "departures for the event → revocation latency (0: none)")
	rate := flag.Float64("rate", 20, "departures per second")
	flag.Parse()
	m := &cluster.Main{Name: "scaleoutbench"}
	defer m.Close()
	run(m, *conc, *dur, *events, *rate)
}

func run(m *cluster.Main, conc int, dur time.Duration, events int, rate float64) {
	fmt.Fprintf(os.Stderr, "load average at start: %s\n", loadAvg())
	pg := cluster.StartPostgres(m)
	rd := cluster.StartRedis(m)
	dir := m.TempDir()
	bin := cluster.BuildQiao(m, dir)

	proxyPort := cluster.FreePort(m)
	domain := "127.0.0.1:" + strconv.Itoa(proxyPort)
	ext := "http://" + domain
	ws := wecomsim.NewSetup(events+100, 7, domain)
	ws.Config.RateLimits = false
	sim := wecomsim.New(ws.Config)
	simSrv := httptest.NewServer(sim)
	m.Cleanup(func() { simSrv.Close(); sim.Close() })
	cfg := strings.NewReplacer("{{EXT}}", ext, "{{CORP}}", ws.CorpID, "{{AGENT}}", strconv.Itoa(ws.AgentID), "{{SIM}}", simSrv.URL,
		"{{DOMAIN}}", domain, "{{SECRET}}", ws.Secret, "{{CSECRET}}", ws.ContactSecret, "{{TOKEN}}", ws.CallbackToken,
		"{{AES}}", ws.CallbackAESKey).Replace(configYAML)
	cfgPath := filepath.Join(dir, "qiao.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		m.Fatalf("%v", err)
	}
	env := []string{"QIAO_STORAGE=" + pg.DSN(), "QIAO_STATE=" + rd.URL(), "QIAO_MASTER_KEY=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}
	c := cluster.New(m, cluster.Options{Bin: bin, Config: cfgPath, Env: env, Replicas: 3, ProxyAddr: domain, KeepAlive: true})
	// The directory, from the command line against the same database.
	if out, err := cluster.RunQiao(bin, env, "sync", "--config", cfgPath, "--data", filepath.Join(dir, "cli"), "--enterprise", "acme", "--source", "wecom"); err != nil {
		m.Fatalf("qiao sync: %v\n%s", err, out)
	}
	// One replica behind a proxy of its own: the same path as the three's.
	one := "127.0.0.1:" + strconv.Itoa(cluster.FreePort(m))
	pctx, cancel := context.WithCancel(context.Background())
	m.Cleanup(cancel)
	oneSrv := &http.Server{Addr: one, Handler: cluster.NewProxy(pctx, []string{c.Replicas[0].Addr}, true)}
	go func() { _ = oneSrv.ListenAndServe() }()
	m.Cleanup(func() { oneSrv.Close() })
	db := cluster.OpenDB(m, pg.DSN())

	tr := &http.Transport{MaxIdleConnsPerHost: conc * 2}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	// A refresh chain per worker: a WeCom logon and a code each.
	chains := make([]string, conc)
	for i := range chains {
		rt, err := logon(ext, simSrv.URL, "zhangsan")
		if err != nil {
			m.Fatalf("logon: %v", err)
		}
		chains[i] = rt
	}

	// The raw RS256 rate of a key of the gateway's size, for a claim set of an access token's size.
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "bench"}}, nil)
	if err != nil {
		m.Fatalf("%v", err)
	}
	claims, _ := json.Marshal(map[string]any{"iss": ext + "/e/acme", "sub": "0193e1f2-user", "aud": "web", "exp": time.Now().Unix(), "iat": time.Now().Unix(),
		"client_id": "web", "scope": "openid offline_access", "jti": "0193e1f2-9c0d-7b7e-8f3e-abcdef012345", "sid": "abc"})

	fmt.Printf("scaleoutbench: concurrency %d, %v per measurement, PostgreSQL + Redis of their own, replicas behind a round-robin proxy (keep-alive), JWT access tokens (RS256)\n", conc, dur)
	benchkit.Setup = fmt.Sprintf("PostgreSQL + Redis, c=%d", conc)
	for _, target := range []struct {
		name, addr string
	}{{"1 replica", one}, {"3 replicas", domain}} {
		token := func(form url.Values, id, secret string) (map[string]any, error) {
			req, _ := http.NewRequest("POST", "http://"+target.addr+"/e/acme/oauth/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(id, secret)
			resp, err := hc.Do(req)
			if err != nil {
				return nil, err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return nil, fmt.Errorf("%s: %s", resp.Status, b)
			}
			var m map[string]any
			return m, json.Unmarshal(b, &m)
		}
		report := func(res benchkit.Result) {
			load := loadAvg()
			sign := benchkit.Measure("  raw RS256 sign", conc, dur/4, func(int) error {
				_, err := signer.Sign(claims)
				return err
			})
			res.Note = "load " + load
			fmt.Println(res)
			fmt.Printf("%s  -> %s at %.2f of the sign rate\n", sign, res.Name, res.Rate()/sign.Rate())
			benchkit.Emit("scaleoutbench", res, sign.Rate())
		}
		res := benchkit.Measure("refresh_token, "+target.name, conc, dur, func(w int) error {
			m, err := token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {chains[w]}}, "web", "web-secret-0123456789abcdef")
			if err != nil {
				return err
			}
			chains[w], _ = m["refresh_token"].(string)
			return nil
		})
		report(res)
		res = benchkit.Measure("client_credentials JWT, "+target.name, conc, dur, func(int) error {
			_, err := token(url.Values{"grant_type": {"client_credentials"}}, "svc", "svc-secret-0123456789abcdef")
			return err
		})
		report(res)
	}
	for _, r := range c.Replicas {
		if !r.Alive() {
			m.Fatalf("replica %s exited during the run:\n%s", r.Name, r.LogText())
		}
	}
	if events > 0 {
		revocation(m, db, ext, simSrv.URL, sim, events, rate)
	}
	fmt.Printf("load average at the end: %s\n", loadAvg())
}

// logon signs who in through WeCom (the simulator) at the external URL and redeems the code: the
// refresh token.
func logon(ext, simURL, who string) (string, error) {
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid offline_access"},
		"redirect_uri": {ext + "/cb"}, "state": {"st"}, "nonce": {"n"}}
	final, _, _, err := cluster.Logon{Before: cl, After: cl, SimURL: simURL, User: who, Stop: ext + "/cb"}.Walk(ext + "/e/acme/authorize?" + q.Encode())
	if err != nil {
		return "", err
	}
	u, _ := url.Parse(final)
	req, _ := http.NewRequest("POST", ext+"/e/acme/oauth/token", strings.NewReader(url.Values{"grant_type": {"authorization_code"},
		"code": {u.Query().Get("code")}, "redirect_uri": {ext + "/cb"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("web", "web-secret-0123456789abcdef")
	resp, err := cl.Do(req)
	if err != nil {
		return "", err
	}
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	rt, _ := m["refresh_token"].(string)
	if resp.StatusCode != 200 || rt == "" {
		return "", fmt.Errorf("code for %s: %s %v", who, resp.Status, m)
	}
	return rt, nil
}

// revocation removes people in WeCom at rate per second, each holding a refresh token; WeCom
// pushes each departure to the proxy, and the replica that applies it revokes the person's tokens
// (refresh_tokens.revoked_at, written with its clock: the same machine's).
func revocation(m *cluster.Main, db *sql.DB, ext, simURL string, sim *wecomsim.Sim, n int, rate float64) {
	resp, err := http.Post(simURL+"/_sim/callback", "application/json", strings.NewReader(`{"url":"`+ext+`/e/acme/sources/wecom/events"}`))
	if err != nil || resp.StatusCode != 204 {
		m.Fatalf("register the callback: %v %v", err, resp)
	}
	resp.Body.Close()
	org := sim.Org()
	org.RLock()
	var people []string
	for _, id := range org.UserIDs() {
		if id != "zhangsan" && org.User(id).Status == 1 && len(people) < n {
			people = append(people, id)
		}
	}
	org.RUnlock()
	if len(people) < n {
		m.Fatalf("only %d active people for %d departures", len(people), n)
	}
	local := map[string]string{} // upstream ID → local user ID
	for _, id := range people {
		if _, err := logon(ext, simURL, id); err != nil {
			m.Fatalf("logon of %s: %v", id, err)
		}
		var uid string
		if err := db.QueryRow(`SELECT user_id FROM user_links WHERE source_id = 'wecom' AND upstream_id = $1`, id).Scan(&uid); err != nil {
			m.Fatalf("the link of %s: %v", id, err)
		}
		local[id] = uid
	}
	start := map[string]int64{} // ms
	every := time.Duration(float64(time.Second) / rate)
	t0 := time.Now()
	for i, id := range people {
		time.Sleep(time.Until(t0.Add(time.Duration(i) * every)))
		start[id] = time.Now().UnixMilli()
		req, _ := http.NewRequest("DELETE", simURL+"/_sim/users/"+id, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode >= 300 {
			m.Fatalf("remove %s in WeCom: %v %v", id, err, resp)
		}
		resp.Body.Close()
	}
	revoked := map[string]int64{}
	deadline := time.Now().Add(2 * time.Minute)
	for len(revoked) < len(people) {
		if time.Now().After(deadline) {
			m.Fatalf("only %d of %d departures revoked within 2 minutes", len(revoked), len(people))
		}
		time.Sleep(200 * time.Millisecond)
		for _, id := range people {
			if _, ok := revoked[id]; ok {
				continue
			}
			var at int64
			if err := db.QueryRow(`SELECT COALESCE(min(revoked_at), 0) FROM refresh_tokens WHERE user_id = $1`, local[id]).Scan(&at); err != nil {
				m.Fatalf("%v", err)
			}
			if at > 0 {
				revoked[id] = at
			}
		}
	}
	var lat []time.Duration
	for _, id := range people {
		lat = append(lat, time.Duration(revoked[id]-start[id])*time.Millisecond)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)] }
	var applied int
	_ = db.QueryRow(`SELECT count(*) FROM sync_tasks WHERE trigger_ = 'event'`).Scan(&applied)
	fmt.Printf("departure → revocation, 3 replicas, %d events at %.0f/s: p50 %v, p99 %v, max %v (%d event tasks; load %s)\n", n, rate,
		pct(.5), pct(.99), lat[len(lat)-1], applied, loadAvg())
	benchkit.EmitRow(benchkit.Row{Driver: "scaleoutbench", Setup: "PostgreSQL + Redis, 3 replicas", Name: "departure → revocation",
		Figure: fmt.Sprintf("p99 %v", pct(.99)), Detail: fmt.Sprintf("p50 %v over %d events at %.0f/s", pct(.5), n, rate)})
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
